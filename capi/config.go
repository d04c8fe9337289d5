package main

import (
	"log/slog"
	"time"

	"github.com/mtlspop/mtlspop/core/managedidentity"
)

// The client configuration and acquisition options, as include/mtlspop.h documents them.

const (
	kindManagedIdentity = "managed_identity"
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
	if err := o.allow("kind", "identity", "mtls_pop", "key", "endpoints", "ca_file", "timeout_ms", "log_level"); err != nil {
		return cfg, err
	}
	if kind, ok, err := o.str("kind"); err != nil {
		return cfg, err
	} else if ok && kind != kindManagedIdentity {
		return cfg, argErrorf("config.kind %q is not supported (supported: %q)", kind, kindManagedIdentity)
	}
	if id, ok, err := o.sub("identity"); err != nil {
		return cfg, err
	} else if ok {
		if cfg.id, err = parseIdentity(id); err != nil {
			return cfg, err
		}
	}
	if cfg.pop, _, err = o.boolean("mtls_pop"); err != nil {
		return cfg, err
	}
	if key, ok, err := o.sub("key"); err != nil {
		return cfg, err
	} else if ok {
		if cfg.key, err = parseKey(key); err != nil {
			return cfg, err
		}
	}
	if ep, ok, err := o.sub("endpoints"); err != nil {
		return cfg, err
	} else if ok {
		if err := ep.allow("imds"); err != nil {
			return cfg, err
		}
		if cfg.imds, _, err = ep.nonEmpty("imds"); err != nil {
			return cfg, err
		}
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
	pop     bool
	force   bool
	claims  string
	timeout time.Duration // 0 = the client's
	core    []managedidentity.AcquireOption
}

func newAcquireOptions(pop, force bool, claims string, timeout time.Duration) *acquireOptions {
	o := &acquireOptions{pop: pop, force: force, claims: claims, timeout: timeout}
	if pop {
		o.core = append(o.core, managedidentity.WithMtlsPoP())
	}
	if force {
		o.core = append(o.core, managedidentity.WithForceRefresh())
	}
	if claims != "" {
		o.core = append(o.core, managedidentity.WithClaims(claims))
	}
	return o
}

// parseAcquireOptions reads an options JSON; defaultPoP is the client's "mtls_pop".
func parseAcquireOptions(data string, defaultPoP bool) (*acquireOptions, error) {
	o, err := parseObject([]byte(data), "options")
	if err != nil {
		return nil, err
	}
	if err := o.allow("mtls_pop", "force_refresh", "claims", "timeout_ms"); err != nil {
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
	claims, _, err := o.str("claims")
	if err != nil {
		return nil, err
	}
	timeout, _, err := o.millis("timeout_ms")
	if err != nil {
		return nil, err
	}
	return newAcquireOptions(pop, force, claims, timeout), nil
}
