package main

/*
#include "capi.h"
*/
import "C"

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/mtlspop/mtlspop/core/token"
)

// Limits of include/mtlspop.h; cgo.go checks they match the header.
const (
	maxInput        = 1 << 20
	maxResponseBody = 16 << 20
)

// callRequest is a parsed mtlspop_call request JSON.
type callRequest struct {
	method  string
	url     string
	header  http.Header
	body    []byte
	timeout time.Duration
}

func parseCallRequest(data string) (*callRequest, error) {
	o, err := parseObject([]byte(data), "request")
	if err != nil {
		return nil, err
	}
	if err := o.allow("method", "url", "headers", "body", "body_base64", "timeout_ms"); err != nil {
		return nil, err
	}
	req := &callRequest{method: http.MethodGet, header: http.Header{}}
	if m, ok, err := o.nonEmpty("method"); err != nil {
		return nil, err
	} else if ok {
		req.method = m
	}
	u, ok, err := o.nonEmpty("url")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, argErrorf("request.url is required")
	}
	if p, err := url.Parse(u); err != nil || !strings.EqualFold(p.Scheme, "https") || p.Host == "" {
		return nil, argErrorf("request.url must be an https URL")
	}
	req.url = u
	if h, ok, err := o.sub("headers"); err != nil {
		return nil, err
	} else if ok {
		for _, name := range h.keys {
			raw, _ := h.raw(name)
			var one string
			var many []string
			switch {
			case kind(raw) == '"' && json.Unmarshal(raw, &one) == nil:
				many = []string{one}
			case kind(raw) == '[' && json.Unmarshal(raw, &many) == nil:
			default:
				return nil, argErrorf("%s must be a string or an array of strings", h.name(name))
			}
			if !validHeaderName(name) {
				return nil, argErrorf("request.headers: %q is not a valid header name", name)
			}
			for _, v := range many {
				if strings.ContainsAny(v, "\r\n\x00") {
					return nil, argErrorf("%s contains a line break or NUL", h.name(name))
				}
				req.header.Add(name, v)
			}
		}
	}
	text, hasText, err := o.str("body")
	if err != nil {
		return nil, err
	}
	b64, hasB64, err := o.str("body_base64")
	if err != nil {
		return nil, err
	}
	switch {
	case hasText && hasB64:
		return nil, argErrorf("request: give body or body_base64, not both")
	case hasText:
		req.body = []byte(text)
	case hasB64:
		if req.body, err = base64.StdEncoding.DecodeString(b64); err != nil {
			return nil, argErrorf("request.body_base64 is not standard base64")
		}
	}
	if req.timeout, _, err = o.millis("timeout_ms"); err != nil {
		return nil, err
	}
	return req, nil
}

// callResponse is a resource's answer, read in full.
type callResponse struct {
	status int
	header http.Header
	body   []byte
}

// call sends a request to a resource with r's token, over mTLS for a PoP token.
func (cl *client) call(r token.Result, data string) (*callResponse, error) {
	req, err := parseCallRequest(data)
	if err != nil {
		return nil, err
	}
	timeout := req.timeout
	if timeout == 0 {
		timeout = cl.timeout
	}
	ctx, cancel := cl.callContext(timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, req.method, req.url, bytes.NewReader(req.body))
	if err != nil {
		return nil, argErrorf("request: invalid method or url")
	}
	hreq.Header = req.header
	resp, err := cl.tc.Do(ctx, hreq, r)
	if err != nil {
		return nil, asError(err, ctx)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return nil, asError(&token.Error{Code: token.CodeNetwork, Message: "reading the response body", Err: err}, ctx)
	}
	if len(body) > maxResponseBody {
		return nil, token.Errorf(token.CodeResponseTooLarge, "the response body exceeds %d bytes", maxResponseBody)
	}
	return &callResponse{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// toC copies the response into an mtlspop_response.
func (r *callResponse) toC() (C.uintptr_t, error) {
	names := make([]string, 0, len(r.header))
	for name := range r.header {
		names = append(names, name)
	}
	slices.Sort(names)
	var strs []string
	for _, name := range names {
		for _, v := range r.header[name] {
			strs = append(strs, name, v)
		}
	}
	hj, err := json.Marshal(r.header)
	if err != nil {
		return 0, token.Wrap(token.CodeInternal, err, "encoding response headers")
	}
	count := len(strs) / 2
	ptrSize := unsafe.Sizeof((*C.char)(nil))
	fixed := unsafe.Sizeof(C.mtlspopc_resp{}) + uintptr(2*count)*ptrSize
	b, err := newCBlock(fixed, append(strs, string(hj), string(r.body))...)
	if err != nil {
		return 0, err
	}
	cr := (*C.mtlspopc_resp)(b.base)
	cr.status = C.int(r.status)
	cr.header_count = C.size_t(count)
	arrays := unsafe.Slice((**C.char)(unsafe.Add(b.base, unsafe.Sizeof(C.mtlspopc_resp{}))), 2*count)
	cr.names, cr.values = nil, nil
	if count > 0 {
		cr.names, cr.values = &arrays[0], &arrays[count]
	}
	for i := 0; i < count; i++ {
		arrays[i] = b.str(strs[2*i])
		arrays[count+i] = b.str(strs[2*i+1])
	}
	cr.headers_json = b.str(string(hj))
	cr.body = (*C.uint8_t)(b.put(r.body))
	cr.body_len = C.size_t(len(r.body))
	return b.handle(C.MTLSPOPC_T_RESPONSE)
}

// validHeaderName reports whether s is an RFC 9110 field name (a token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}
