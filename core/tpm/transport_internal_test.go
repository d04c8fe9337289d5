package tpm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// fakeTCPTPM accepts connections and hands each one, in order, to the next handler.
func fakeTCPTPM(t *testing.T, handlers ...func(c net.Conn)) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for _, h := range handlers {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				h(c)
			}()
		}
	}()
	return l
}

// readFrame reads one framed command (TPM_SEND_COMMAND ‖ locality ‖ length ‖ command).
func readFrame(c net.Conn) ([]byte, error) {
	var hdr [9]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	cmd := make([]byte, binary.BigEndian.Uint32(hdr[5:9]))
	_, err := io.ReadFull(c, cmd)
	return cmd, err
}

// frame is a framed response: length ‖ response ‖ trailer.
func frame(rsp []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(rsp)))
	out = append(out, rsp...)
	return binary.BigEndian.AppendUint32(out, 0)
}

// After a command times out with part of its response read, the rest of that response (and a
// stale answer behind it) must never be read as the next command's response: the connection is
// dropped and the next command gets its own answer on a fresh one.
func TestTCPTPMTimeoutDoesNotDesync(t *testing.T) {
	late := make(chan struct{})
	stale := bytes.Repeat([]byte{0xAA}, 16)
	l := fakeTCPTPM(t,
		func(c net.Conn) {
			if _, err := readFrame(c); err != nil {
				return
			}
			full := frame(stale)
			c.Write(full[:6]) // the length and two bytes, then the TPM "stalls"
			<-late
			c.Write(full[6:]) // the rest arrives after the client gave up
			c.Write(frame(stale))
			io.Copy(io.Discard, c)
		},
		func(c net.Conn) {
			cmd, err := readFrame(c)
			if err != nil {
				return
			}
			c.Write(frame(append([]byte("answer to "), cmd...)))
			io.Copy(io.Discard, c)
		},
	)
	tr, err := dialTCP(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tr.timeout = 200 * time.Millisecond

	if _, err := tr.Send([]byte("first")); err == nil {
		t.Fatal("a stalled response did not time out")
	}
	close(late)
	time.Sleep(50 * time.Millisecond) // the stale bytes are on the wire now
	rsp, err := tr.Send([]byte("second"))
	if err != nil {
		t.Fatalf("command after the timeout: %v", err)
	}
	if string(rsp) != "answer to second" {
		t.Fatalf("command after the timeout read %q; want its own answer", rsp)
	}
}

// When the TPM is gone for good, commands after a failure fail at once with
// ErrConnectionBroken instead of hanging on a dead stream.
func TestTCPTPMBrokenConnectionFailsFast(t *testing.T) {
	l := fakeTCPTPM(t, func(c net.Conn) {
		readFrame(c) // and hang up without answering
	})
	tr, err := dialTCP(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Send([]byte("cmd")); err == nil {
		t.Fatal("a closed connection answered")
	}
	l.Close() // nothing to reconnect to
	start := time.Now()
	_, err = tr.Send([]byte("cmd"))
	if !errors.Is(err, ErrConnectionBroken) {
		t.Fatalf("second command: %v; want ErrConnectionBroken", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the failure took %v", d)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("Close of a broken transport: %v", err)
	}
	if _, err := tr.Send([]byte("cmd")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
}
