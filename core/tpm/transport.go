package tpm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// DefaultDevice is the kernel's TPM resource manager: many processes may open it, each with its
// own handle space.
const DefaultDevice = "/dev/tpmrm0"

// tcpTimeout bounds one command on a TCP TPM (swtpm): a dead emulator must not hang a
// handshake forever. Real RSA key generation in a software TPM takes well under this.
const tcpTimeout = 2 * time.Minute

// openDevice opens a TPM by name: "" or a path for a character device ("/dev/tpmrm0"), or
// "tcp://host:port" for a TPM simulator that speaks the Microsoft simulator's framing on its
// command port (swtpm --server type=tcp, the TCG reference simulator).
func openDevice(device string) (transport.TPMCloser, error) {
	if device == "" {
		device = DefaultDevice
	}
	if addr, ok := strings.CutPrefix(device, "tcp://"); ok {
		return dialTCP(addr)
	}
	if strings.Contains(device, "://") {
		return nil, fmt.Errorf("unsupported TPM device %q: use a device path or tcp://host:port", device)
	}
	fi, err := os.Stat(device)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&os.ModeCharDevice == 0 {
		return nil, fmt.Errorf("%s is not a character device", device)
	}
	f, err := os.OpenFile(device, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return transport.FromReadWriteCloser(f), nil
}

// tcpTPM is a TPM reached over TCP with the Microsoft simulator's framing:
//
//	command:  uint32 TPM_SEND_COMMAND (8) ‖ uint8 locality ‖ uint32 length ‖ command
//	response: uint32 length ‖ response ‖ uint32 trailer (0)
//
// swtpm accepts this framing on its data port as well as raw commands. Unlike go-tpm's tcp
// transport it reads with io.ReadFull (a response may arrive in several segments) and needs
// only the command port, so it never speaks to swtpm's control channel, whose protocol differs
// from the simulator's platform port.
//
// The framing has no resynchronisation: after a failed or timed-out exchange, bytes of the
// abandoned response may still arrive and would be read as the next command's answer. So any
// error closes the connection, and the next command dials a fresh one (swtpm keeps the TPM's
// state, loaded objects included, across connections); when that dial fails the command fails
// at once with ErrConnectionBroken instead of waiting on a dead stream.
type tcpTPM struct {
	addr    string
	timeout time.Duration // per command

	mu     sync.Mutex
	conn   net.Conn // nil after an error, until the next command redials
	broken error    // why conn was dropped
	closed bool
}

// ErrConnectionBroken is returned for a command sent after the connection to a TCP TPM failed
// mid-command and could not be re-established.
var ErrConnectionBroken = errors.New("tpm: the connection to the TPM broke and could not be re-established")

const (
	msSimSendCommand = 8
	maxResponse      = 1 << 16
	tcpDialTimeout   = 10 * time.Second
)

func dialTCP(addr string) (*tcpTPM, error) {
	c, err := net.DialTimeout("tcp", addr, tcpDialTimeout)
	if err != nil {
		return nil, err
	}
	return &tcpTPM{addr: addr, timeout: tcpTimeout, conn: c}, nil
}

func (t *tcpTPM) Send(cmd []byte) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, net.ErrClosed
	}
	if t.conn == nil {
		c, err := net.DialTimeout("tcp", t.addr, tcpDialTimeout)
		if err != nil {
			return nil, fmt.Errorf("%w (earlier: %v; reconnecting: %v)", ErrConnectionBroken, t.broken, err)
		}
		t.conn, t.broken = c, nil
	}
	rsp, err := t.exchange(cmd)
	if err != nil {
		// Whatever the failure, the stream's position is unknown: drop it.
		_ = t.conn.Close()
		t.conn, t.broken = nil, err
		return nil, err
	}
	return rsp, nil
}

// exchange sends one framed command and reads its framed response on t.conn.
func (t *tcpTPM) exchange(cmd []byte) ([]byte, error) {
	if err := t.conn.SetDeadline(time.Now().Add(t.timeout)); err != nil {
		return nil, err
	}
	frame := make([]byte, 9+len(cmd))
	binary.BigEndian.PutUint32(frame[0:4], msSimSendCommand)
	frame[4] = 0 // locality 0
	binary.BigEndian.PutUint32(frame[5:9], uint32(len(cmd)))
	copy(frame[9:], cmd)
	if _, err := t.conn.Write(frame); err != nil {
		return nil, fmt.Errorf("tcp tpm: sending command: %w", err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(t.conn, hdr[:]); err != nil {
		return nil, fmt.Errorf("tcp tpm: reading response length: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return nil, errors.New("tcp tpm: empty response (is the TPM started?)")
	}
	if n > maxResponse {
		return nil, fmt.Errorf("tcp tpm: response of %d bytes is too large", n)
	}
	rsp := make([]byte, n)
	if _, err := io.ReadFull(t.conn, rsp); err != nil {
		return nil, fmt.Errorf("tcp tpm: reading response: %w", err)
	}
	if _, err := io.ReadFull(t.conn, hdr[:]); err != nil {
		return nil, fmt.Errorf("tcp tpm: reading response trailer: %w", err)
	}
	return rsp, nil
}

func (t *tcpTPM) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	if t.conn == nil {
		return nil
	}
	err := t.conn.Close()
	t.conn = nil
	return err
}

// CountingTransport wraps a TPM transport and counts the commands sent through it by command
// code, so tests and benchmarks can show how much TPM work an operation costs. It is safe for
// concurrent use; it never closes the transport it wraps.
type CountingTransport struct {
	next transport.TPM

	mu     sync.Mutex
	counts map[tpm2.TPMCC]uint64
}

// NewCountingTransport returns a counting wrapper around t.
func NewCountingTransport(t transport.TPM) *CountingTransport {
	return &CountingTransport{next: t, counts: make(map[tpm2.TPMCC]uint64)}
}

// Send counts the command's code (bytes 6–9 of the command header) and forwards the command.
func (c *CountingTransport) Send(cmd []byte) ([]byte, error) {
	if len(cmd) >= 10 {
		cc := tpm2.TPMCC(binary.BigEndian.Uint32(cmd[6:10]))
		c.mu.Lock()
		c.counts[cc]++
		c.mu.Unlock()
	}
	return c.next.Send(cmd)
}

// Count returns how many commands with code cc were sent.
func (c *CountingTransport) Count(cc tpm2.TPMCC) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[cc]
}

// Total returns how many commands were sent.
func (c *CountingTransport) Total() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n uint64
	for _, v := range c.counts {
		n += v
	}
	return n
}

// Counts returns a copy of the counts by command code.
func (c *CountingTransport) Counts() map[tpm2.TPMCC]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[tpm2.TPMCC]uint64, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// Reset sets every count to zero.
func (c *CountingTransport) Reset() {
	c.mu.Lock()
	clear(c.counts)
	c.mu.Unlock()
}

// CommandName returns the TPM 2.0 name of a command code ("TPM2_Sign"), or its hex value for
// commands this package does not name.
func CommandName(cc tpm2.TPMCC) string {
	if n, ok := commandNames[cc]; ok {
		return n
	}
	return fmt.Sprintf("TPM_CC(0x%x)", uint32(cc))
}

var commandNames = map[tpm2.TPMCC]string{
	tpm2.TPMCCCreatePrimary:      "TPM2_CreatePrimary",
	tpm2.TPMCCCreate:             "TPM2_Create",
	tpm2.TPMCCLoad:               "TPM2_Load",
	tpm2.TPMCCSign:               "TPM2_Sign",
	tpm2.TPMCCCertify:            "TPM2_Certify",
	tpm2.TPMCCFlushContext:       "TPM2_FlushContext",
	tpm2.TPMCCReadPublic:         "TPM2_ReadPublic",
	tpm2.TPMCCNVRead:             "TPM2_NV_Read",
	tpm2.TPMCCNVReadPublic:       "TPM2_NV_ReadPublic",
	tpm2.TPMCCActivateCredential: "TPM2_ActivateCredential",
	tpm2.TPMCCStartAuthSession:   "TPM2_StartAuthSession",
	tpm2.TPMCCPolicySecret:       "TPM2_PolicySecret",
	tpm2.TPMCCGetCapability:      "TPM2_GetCapability",
}
