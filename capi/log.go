package main

/*
#include <stdlib.h>
#include "capi.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Logging: each client logs through a slog.Handler (logHandler) that formats the record in Go and
// queues it; one goroutine delivers queued records to the C callback, one at a time. The core
// never logs secrets, so nothing here redacts.

// C log levels (mtlspop_log_level).
const (
	logDebug = 0
	logInfo  = 1
	logWarn  = 2
	logError = 3
	logOff   = 4
)

// logQueueSize bounds the records waiting for the callback; beyond it they are dropped.
const logQueueSize = 256

type logSink struct {
	fn   C.mtlspop_log_fn
	user C.uintptr_t
	min  int
}

type logRecord struct {
	level   int
	message string
	fields  string
}

var logs struct {
	sink    atomic.Pointer[logSink]
	mu      sync.Mutex // held while a record is delivered, so a setter can wait one out
	queue   chan logRecord
	dropped atomic.Int64
	start   sync.Once
}

func init() { logs.queue = make(chan logRecord, logQueueSize) }

// setLogCallback installs (or with fn NULL removes) the callback. With wait, it returns only once
// no delivery to the previous callback is under way; without (a call from inside the callback),
// the change applies from the next record.
func setLogCallback(fn C.mtlspop_log_fn, user C.uintptr_t, min int, wait bool) {
	var s *logSink
	if fn != nil && min < logOff {
		s = &logSink{fn: fn, user: user, min: min}
		logs.start.Do(func() { go deliverLogs(logs.queue) })
	}
	if wait {
		logs.mu.Lock()
		defer logs.mu.Unlock()
	}
	logs.sink.Store(s)
}

func deliverLogs(queue <-chan logRecord) {
	for rec := range queue {
		func() {
			defer func() { _ = recover() }()
			logs.mu.Lock()
			defer logs.mu.Unlock()
			s := logs.sink.Load()
			if s == nil {
				return
			}
			if n := logs.dropped.Swap(0); n > 0 && logWarn >= s.min {
				callLog(s, logRecord{level: logWarn, message: "mtlspop: log records dropped: the log callback is too slow",
					fields: `{"dropped":` + strconv.FormatInt(n, 10) + `}`})
			}
			if rec.level >= s.min {
				callLog(s, rec)
			}
		}()
	}
}

func callLog(s *logSink, rec logRecord) {
	msg := C.CString(rec.message)
	fields := C.CString(rec.fields)
	C.mtlspopc_call_log(s.fn, s.user, C.int(rec.level), msg, fields)
	C.free(unsafe.Pointer(msg))
	C.free(unsafe.Pointer(fields))
}

// cLevel maps a slog level to the C enum.
func cLevel(l slog.Level) int {
	switch {
	case l < slog.LevelInfo:
		return logDebug
	case l < slog.LevelWarn:
		return logInfo
	case l < slog.LevelError:
		return logWarn
	}
	return logError
}

// logHandler is the slog.Handler of one client. level is the client's log_level.
type logHandler struct {
	level  slog.Level
	prefix string      // group prefix, "a.b." for WithGroup("a").WithGroup("b")
	attrs  []slog.Attr // from WithAttrs, keys already prefixed
}

func newLogHandler(level slog.Level) *logHandler { return &logHandler{level: level} }

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool {
	s := logs.sink.Load()
	return s != nil && l >= h.level && cLevel(l) >= s.min
}

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	fields := map[string]any{}
	for _, a := range h.attrs {
		addAttr(fields, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		addAttr(fields, h.prefix, a)
		return true
	})
	js, err := json.Marshal(fields)
	if err != nil {
		js = []byte("{}")
	}
	enqueueLog(logRecord{level: cLevel(r.Level), message: r.Message, fields: string(js)})
	return nil
}

func enqueueLog(rec logRecord) {
	select {
	case logs.queue <- rec:
	default:
		logs.dropped.Add(1)
	}
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range as {
		a.Key = h.prefix + a.Key
		n.attrs = append(n.attrs, a)
	}
	return &n
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.prefix = h.prefix + name + "."
	return &n
}

// addAttr flattens a, with groups as dotted key prefixes, into fields.
func addAttr(fields map[string]any, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			addAttr(fields, p, g)
		}
		return
	}
	fields[prefix+a.Key] = logValue(v)
}

func logValue(v slog.Value) any {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindInt64:
		return v.Int64()
	case slog.KindUint64:
		return v.Uint64()
	case slog.KindFloat64:
		return v.Float64()
	case slog.KindBool:
		return v.Bool()
	case slog.KindDuration:
		return v.Duration().String()
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	}
	a := v.Any()
	if err, ok := a.(error); ok {
		return err.Error()
	}
	if _, err := json.Marshal(a); err != nil {
		return fmt.Sprint(a)
	}
	return a
}
