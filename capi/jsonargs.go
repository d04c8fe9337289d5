package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/mtlspop/mtlspop/core/token"
)

// Every JSON argument of the C ABI (client configuration, acquisition options, call requests,
// verifier configuration) is read through object: strictly, so that a misspelt key or a value of
// the wrong type is an error naming the key, never a silently ignored setting.

// object is one JSON object, its members kept raw until a typed getter reads them.
type object struct {
	path    string // "config", "config.identity", ...: prefixes error messages
	members map[string]json.RawMessage
	keys    []string // in document order
}

// parseObject reads data, which must be exactly one JSON object with unique keys.
func parseObject(data []byte, path string) (*object, error) {
	if !utf8.Valid(data) {
		return nil, argErrorf("%s is not valid UTF-8", path)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	o, err := decodeObject(dec, path)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, argErrorf("%s: unexpected data after the JSON object", path)
	}
	return o, nil
}

func decodeObject(dec *json.Decoder, path string) (*object, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, syntaxError(path, err)
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, argErrorf("%s must be a JSON object", path)
	}
	o := &object{path: path, members: map[string]json.RawMessage{}}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, syntaxError(path, err)
		}
		key, _ := t.(string)
		if _, dup := o.members[key]; dup {
			return nil, argErrorf("%s: duplicate key %q", path, key)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntaxError(path, err)
		}
		o.members[key] = raw
		o.keys = append(o.keys, key)
	}
	if _, err := dec.Token(); err != nil {
		return nil, syntaxError(path, err)
	}
	return o, nil
}

// syntaxError reports malformed JSON. encoding/json's messages quote at most one character of
// the input, never a value, so they are safe to pass on.
func syntaxError(path string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return argErrorf("%s: unexpected end of JSON", path)
	}
	return argErrorf("%s is not valid JSON: %v", path, err)
}

// allow refuses keys outside the given set.
func (o *object) allow(keys ...string) error {
	for _, k := range o.keys {
		if !slices.Contains(keys, k) {
			return argErrorf("%s: unknown key %q", o.path, k)
		}
	}
	return nil
}

func (o *object) name(key string) string { return o.path + "." + key }

func (o *object) has(key string) bool { _, ok := o.members[key]; return ok }

// kind is the JSON type of a raw value, by its first byte.
func kind(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	switch c := raw[0]; c {
	case '"', '{', '[', 't', 'f', 'n':
		if c == 'f' {
			return 't' // both booleans
		}
		return c
	}
	return '0' // a number
}

// str returns a string member; ok is false when the key is absent.
func (o *object) str(key string) (s string, ok bool, err error) {
	raw, ok := o.members[key]
	if !ok {
		return "", false, nil
	}
	if kind(raw) != '"' || json.Unmarshal(raw, &s) != nil {
		return "", true, argErrorf("%s must be a string", o.name(key))
	}
	return s, true, nil
}

// nonEmpty is str for members that must not be "".
func (o *object) nonEmpty(key string) (string, bool, error) {
	s, ok, err := o.str(key)
	if err == nil && ok && s == "" {
		err = argErrorf("%s must not be empty", o.name(key))
	}
	return s, ok, err
}

func (o *object) boolean(key string) (b, ok bool, err error) {
	raw, ok := o.members[key]
	if !ok {
		return false, false, nil
	}
	if kind(raw) != 't' || json.Unmarshal(raw, &b) != nil {
		return false, true, argErrorf("%s must be true or false", o.name(key))
	}
	return b, true, nil
}

// integer returns an integral number member within [lo, hi].
func (o *object) integer(key string, lo, hi int64) (n int64, ok bool, err error) {
	raw, ok := o.members[key]
	if !ok {
		return 0, false, nil
	}
	if kind(raw) == '0' {
		if n, err = strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64); err == nil && n >= lo && n <= hi {
			return n, true, nil
		}
	}
	return 0, true, argErrorf("%s must be an integer from %d to %d", o.name(key), lo, hi)
}

// maxTimeoutMillis bounds every timeout_ms: a day.
const maxTimeoutMillis = 24 * 60 * 60 * 1000

func (o *object) millis(key string) (time.Duration, bool, error) {
	n, ok, err := o.integer(key, 1, maxTimeoutMillis)
	return time.Duration(n) * time.Millisecond, ok, err
}

// sub returns an object member.
func (o *object) sub(key string) (*object, bool, error) {
	raw, ok := o.members[key]
	if !ok {
		return nil, false, nil
	}
	if kind(raw) != '{' {
		return nil, true, argErrorf("%s must be a JSON object", o.name(key))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	s, err := decodeObject(dec, o.name(key))
	return s, true, err
}

// raw returns a member undecoded.
func (o *object) raw(key string) (json.RawMessage, bool) {
	raw, ok := o.members[key]
	return raw, ok
}

// strings returns a member that is an array of non-empty strings.
func (o *object) strings(key string) ([]string, bool, error) {
	raw, ok := o.members[key]
	if !ok {
		return nil, false, nil
	}
	var out []string
	if kind(raw) != '[' || json.Unmarshal(raw, &out) != nil || slices.Contains(out, "") {
		return nil, true, argErrorf("%s must be an array of non-empty strings", o.name(key))
	}
	return out, true, nil
}

func argErrorf(format string, args ...any) *token.Error {
	return token.Errorf(token.CodeInvalidArgument, format, args...)
}
