package main

import (
	"log/slog"
	"time"

	"github.com/mtlspop/mtlspop/core/confidential"
	"github.com/mtlspop/mtlspop/core/managedidentity"
)

// The client configuration and acquisition options, as include/mtlspop.h documents them.

const (
	kindManagedIdentity = "managed_identity"
	kindConfidential    = "confidential"
	providerSoftware    = "software"
	providerTPM         = "tpm"
	// imdsEnv is the variable endpoints.imds overrides.
	imdsEnv = "AZURE_POD_IDENTITY_AUTHORITY_HOST"
)

// levelOff is a log level above every real one.
const levelOff = slog.Level(1 << 10)

// clientConfig is a parsed client configuration.
type clientConfig struct {
	id       managedidentity.ID
	pop      bool
	imds     string // "" = from the environment
	caFile   string
	timeout  time.Duration
	logLevel slog.Level
	key      keyConfig
	app      *appConfig // kind "confidential"
}

// appConfig is a confidential client's part of the configuration.
type appConfig struct {
	authority, clientID       string
	certFile, keyFile, secret string
	sendX5C                   bool
	region, mtlsEndpoint      string
	leg1                      *leg1Config // federated: leg 1 of a two-leg FIC
}

// leg1Config is config.federated: a managed identity or a confidential client.
type leg1Config struct {
	mi  *clientConfig
	app *appConfig
	pop bool // leg 1's token is an mTLS PoP token, so leg 2 is a bound FIC over mTLS
}

// keyConfig is config.key: where binding keys live.
type keyConfig struct {
	provider string // providerSoftware or providerTPM
	device   string // tpm: "" = /dev/tpmrm0, or "tcp://host:port"
	stateDir string // tpm: "" = the provider's default
	attest   bool
}

// parseClientConfig reads the configuration JSON; given is false when the caller passed NULL.
func parseClientConfig(data string, given bool) (clientConfig, error) {
	cfg := clientConfig{id: managedidentity.SystemAssigned(), timeout: managedidentity.DefaultTimeout, logLevel: slog.LevelInfo,
		key: keyConfig{provider: providerSoftware}}
	if !given {
		return cfg, nil
	}
	o, err := parseObject([]byte(data), "config")
	if err != nil {
		return cfg, err
	}
	kind, _, err := o.str("kind")
	if err != nil {
		return cfg, err
	}
	switch kind {
	case "", kindManagedIdentity:
		if err := o.allow("kind", "identity", "mtls_pop", "key", "endpoints", "ca_file", "timeout_ms", "log_level"); err != nil {
			return cfg, err
		}
		if err := parseManagedIdentity(o, &cfg); err != nil {
			return cfg, err
		}
	case kindConfidential:
		if err := o.allow("kind", "authority", "client_id", "certificate", "secret", "federated", "region", "mtls_endpoint",
			"mtls_pop", "ca_file", "timeout_ms", "log_level"); err != nil {
			return cfg, err
		}
		if cfg.app, err = parseApp(o); err != nil {
			return cfg, err
		}
	default:
		return cfg, argErrorf("config.kind %q is not supported (supported: %q, %q)", kind, kindManagedIdentity, kindConfidential)
	}
	if cfg.pop, _, err = o.boolean("mtls_pop"); err != nil {
		return cfg, err
	}
	if cfg.caFile, _, err = o.nonEmpty("ca_file"); err != nil {
		return cfg, err
	}
	if d, ok, err := o.millis("timeout_ms"); err != nil {
		return cfg, err
	} else if ok {
		cfg.timeout = d
	}
	if lvl, ok, err := o.str("log_level"); err != nil {
		return cfg, err
	} else if ok {
		if cfg.logLevel, ok = parseLevel(lvl); !ok {
			return cfg, argErrorf(`config.log_level %q is not one of "debug", "info", "warn", "error", "off"`, lvl)
		}
	}
	return cfg, nil
}

// parseManagedIdentity reads a managed identity's members: identity, key, endpoints.
func parseManagedIdentity(o *object, cfg *clientConfig) error {
	if id, ok, err := o.sub("identity"); err != nil {
		return err
	} else if ok {
		if cfg.id, err = parseIdentity(id); err != nil {
			return err
		}
	}
	if key, ok, err := o.sub("key"); err != nil {
		return err
	} else if ok {
		if cfg.key, err = parseKey(key); err != nil {
			return err
		}
	}
	if ep, ok, err := o.sub("endpoints"); err != nil {
		return err
	} else if ok {
		if err := ep.allow("imds"); err != nil {
			return err
		}
		if cfg.imds, _, err = ep.nonEmpty("imds"); err != nil {
			return err
		}
	}
	return nil
}

// parseFederated reads config.federated: leg 1 of a two-leg FIC, a managed identity or another
// confidential client, whose token for api://AzureADTokenExchange is this client's assertion.
func parseFederated(o *object) (*leg1Config, error) {
	if err := o.allow("managed_identity", "confidential", "mtls_pop"); err != nil {
		return nil, err
	}
	l := &leg1Config{pop: true}
	if pop, ok, err := o.boolean("mtls_pop"); err != nil {
		return nil, err
	} else if ok {
		l.pop = pop
	}
	mi, hasMI, err := o.sub("managed_identity")
	if err != nil {
		return nil, err
	}
	cc, hasCC, err := o.sub("confidential")
	if err != nil {
		return nil, err
	}
	switch {
	case hasMI == hasCC:
		return nil, argErrorf("config.federated needs exactly one of managed_identity and confidential")
	case hasMI:
		if err := mi.allow("identity", "key", "endpoints"); err != nil {
			return nil, err
		}
		l.mi = &clientConfig{id: managedidentity.SystemAssigned(), key: keyConfig{provider: providerSoftware}}
		if err := parseManagedIdentity(mi, l.mi); err != nil {
			return nil, err
		}
	default:
		if err := cc.allow("authority", "client_id", "certificate", "secret", "region", "mtls_endpoint"); err != nil {
			return nil, err
		}
		if l.app, err = parseApp(cc); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func parseApp(o *object) (*appConfig, error) {
	a := &appConfig{}
	var err error
	var ok bool
	if a.authority, ok, err = o.nonEmpty("authority"); err != nil {
		return nil, err
	} else if !ok {
		return nil, argErrorf("config.authority is required for a confidential client")
	}
	if a.clientID, ok, err = o.nonEmpty("client_id"); err != nil {
		return nil, err
	} else if !ok {
		return nil, argErrorf("config.client_id is required for a confidential client")
	}
	if a.secret, _, err = o.nonEmpty("secret"); err != nil {
		return nil, err
	}
	if cert, ok, err := o.sub("certificate"); err != nil {
		return nil, err
	} else if ok {
		if err := cert.allow("cert_file", "key_file", "send_x5c"); err != nil {
			return nil, err
		}
		if a.certFile, ok, err = cert.nonEmpty("cert_file"); err != nil {
			return nil, err
		} else if !ok {
			return nil, argErrorf("config.certificate.cert_file is required")
		}
		if a.keyFile, ok, err = cert.nonEmpty("key_file"); err != nil {
			return nil, err
		} else if !ok {
			return nil, argErrorf("config.certificate.key_file is required")
		}
		if a.sendX5C, _, err = cert.boolean("send_x5c"); err != nil {
			return nil, err
		}
	}
	if fed, ok, err := o.sub("federated"); err != nil {
		return nil, err
	} else if ok {
		if a.leg1, err = parseFederated(fed); err != nil {
			return nil, err
		}
	}
	n := 0
	for _, has := range []bool{a.certFile != "", a.secret != "", a.leg1 != nil} {
		if has {
			n++
		}
	}
	if n != 1 {
		return nil, argErrorf("a confidential client needs exactly one of config.certificate, config.secret and config.federated")
	}
	if a.region, _, err = o.nonEmpty("region"); err != nil {
		return nil, err
	}
	if a.mtlsEndpoint, _, err = o.nonEmpty("mtls_endpoint"); err != nil {
		return nil, err
	}
	return a, nil
}

func parseKey(o *object) (keyConfig, error) {
	k := keyConfig{provider: providerSoftware}
	if err := o.allow("provider", "device", "state_dir", "attest"); err != nil {
		return k, err
	}
	p, ok, err := o.str("provider")
	if err != nil {
		return k, err
	}
	if ok {
		k.provider = p
	}
	if k.device, _, err = o.nonEmpty("device"); err != nil {
		return k, err
	}
	if k.stateDir, _, err = o.nonEmpty("state_dir"); err != nil {
		return k, err
	}
	if k.attest, _, err = o.boolean("attest"); err != nil {
		return k, err
	}
	switch {
	case k.provider != providerSoftware && k.provider != providerTPM:
		return k, argErrorf("config.key.provider %q is not one of %q, %q", k.provider, providerSoftware, providerTPM)
	case k.provider == providerSoftware && (k.device != "" || k.stateDir != ""):
		return k, argErrorf("config.key.device and config.key.state_dir need \"provider\": \"tpm\"")
	}
	return k, nil
}

func parseIdentity(o *object) (managedidentity.ID, error) {
	if err := o.allow("type", "id"); err != nil {
		return managedidentity.ID{}, err
	}
	typ, ok, err := o.str("type")
	if err != nil {
		return managedidentity.ID{}, err
	}
	if !ok {
		return managedidentity.ID{}, argErrorf("config.identity.type is required")
	}
	id, hasID, err := o.nonEmpty("id")
	if err != nil {
		return managedidentity.ID{}, err
	}
	if typ == "system" {
		if hasID {
			return managedidentity.ID{}, argErrorf("config.identity.id must be absent for a system-assigned identity")
		}
		return managedidentity.SystemAssigned(), nil
	}
	mk := map[string]func(string) managedidentity.ID{
		"client_id":   managedidentity.UserAssignedClientID,
		"resource_id": managedidentity.UserAssignedResourceID,
		"object_id":   managedidentity.UserAssignedObjectID,
	}[typ]
	if mk == nil {
		return managedidentity.ID{}, argErrorf(`config.identity.type %q is not one of "system", "client_id", "resource_id", "object_id"`, typ)
	}
	if !hasID {
		return managedidentity.ID{}, argErrorf("config.identity.id is required for type %q", typ)
	}
	return mk(id), nil
}

func parseLevel(s string) (slog.Level, bool) {
	switch s {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	case "off":
		return levelOff, true
	}
	return 0, false
}

// acquireOptions is a parsed options JSON, with the core options it stands for built once.
type acquireOptions struct {
	pop       bool
	force     bool
	cacheOnly bool
	claims    string
	timeout   time.Duration // 0 = the client's
	mi        []managedidentity.AcquireOption
	cc        []confidential.AcquireOption
}

func newAcquireOptions(pop, force, cacheOnly bool, claims string, timeout time.Duration) *acquireOptions {
	o := &acquireOptions{pop: pop, force: force, cacheOnly: cacheOnly, claims: claims, timeout: timeout}
	if pop {
		o.mi = append(o.mi, managedidentity.WithMtlsPoP())
		o.cc = append(o.cc, confidential.WithMtlsPoP())
	}
	if force {
		o.mi = append(o.mi, managedidentity.WithForceRefresh())
		o.cc = append(o.cc, confidential.WithForceRefresh())
	}
	if cacheOnly {
		o.mi = append(o.mi, managedidentity.WithCacheOnly())
		o.cc = append(o.cc, confidential.WithCacheOnly())
	}
	if claims != "" {
		o.mi = append(o.mi, managedidentity.WithClaims(claims))
		o.cc = append(o.cc, confidential.WithClaims(claims))
	}
	return o
}

// parseAcquireOptions reads an options JSON; defaultPoP is the client's "mtls_pop".
func parseAcquireOptions(data string, defaultPoP bool) (*acquireOptions, error) {
	o, err := parseObject([]byte(data), "options")
	if err != nil {
		return nil, err
	}
	if err := o.allow("mtls_pop", "force_refresh", "cache_only", "claims", "timeout_ms"); err != nil {
		return nil, err
	}
	pop, ok, err := o.boolean("mtls_pop")
	if err != nil {
		return nil, err
	}
	if !ok {
		pop = defaultPoP
	}
	force, _, err := o.boolean("force_refresh")
	if err != nil {
		return nil, err
	}
	cacheOnly, _, err := o.boolean("cache_only")
	if err != nil {
		return nil, err
	}
	claims, _, err := o.str("claims")
	if err != nil {
		return nil, err
	}
	timeout, _, err := o.millis("timeout_ms")
	if err != nil {
		return nil, err
	}
	return newAcquireOptions(pop, force, cacheOnly, claims, timeout), nil
}
