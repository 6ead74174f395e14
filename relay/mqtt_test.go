package relay

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// A minimal MQTT 3.1.1 client: just the packets the permission tests need
// (CONNECT, SUBSCRIBE, PUBLISH at QoS 0, 1 and 2 with their acknowledgements,
// PINGREQ), written out
// from the specification rather than pulled in as a dependency.

// MQTT control packet types, as the high nibble of the first byte.
const (
	mqttConnect   = 0x10
	mqttConnAck   = 0x20
	mqttPublish   = 0x30
	mqttPubAck    = 0x40
	mqttPubRec    = 0x50
	mqttPubRel    = 0x62 // with the reserved flags 0010
	mqttPubComp   = 0x70
	mqttSubscribe = 0x82 // with the reserved flags 0010
	mqttSubAck    = 0x90
	mqttPingReq   = 0xc0
	mqttPingResp  = 0xd0
)

// mqttSubFailure is the SUBACK return code for a refused subscription.
const mqttSubFailure = 0x80

// mqttPacket is one packet read from the server.
type mqttPacket struct {
	typ  byte // the first byte
	body []byte
}

// mqttMsg is a PUBLISH the server sent.
type mqttMsg struct {
	topic   string
	qos     byte
	payload string
}

type mqttClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	pid  uint16
	msgs []mqttMsg // PUBLISH packets read while waiting for something else
}

// mqttConnect dials addr and logs in as user with password. It returns the
// CONNACK return code (0 is accepted; nats-server answers a refused login
// with 5, not authorized, and closes the connection).
func mqttDial(t *testing.T, addr, clientID, user, password string) (*mqttClient, byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("mqtt dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &mqttClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	var vh []byte
	vh = mqttAppendString(vh, "MQTT")
	vh = append(vh, 4)              // protocol level 3.1.1
	vh = append(vh, 0x80|0x40|0x02) // username, password, clean session
	vh = binary.BigEndian.AppendUint16(vh, 30)
	vh = mqttAppendString(vh, clientID)
	vh = mqttAppendString(vh, user)
	vh = mqttAppendString(vh, password)
	c.write(mqttConnect, vh)
	p := c.read()
	if p.typ != mqttConnAck || len(p.body) != 2 {
		t.Fatalf("mqtt connect as %s: got packet %#x % x, want CONNACK", user, p.typ, p.body)
	}
	return c, p.body[1]
}

func mqttAppendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func (c *mqttClient) write(typ byte, body []byte) {
	c.t.Helper()
	b := []byte{typ}
	n := len(body)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			break
		}
	}
	b = append(b, body...)
	if err := c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("mqtt write: %v", err)
	}
}

// readPacket reads one packet, waiting at most until deadline.
func (c *mqttClient) readPacket(deadline time.Time) (mqttPacket, error) {
	if err := c.conn.SetReadDeadline(deadline); err != nil {
		return mqttPacket{}, err
	}
	typ, err := c.r.ReadByte()
	if err != nil {
		return mqttPacket{}, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		d, err := c.r.ReadByte()
		if err != nil {
			return mqttPacket{}, err
		}
		n += int(d&0x7f) * mul
		mul *= 128
		if d&0x80 == 0 {
			break
		}
		if i == 3 {
			return mqttPacket{}, errors.New("mqtt: malformed remaining length")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return mqttPacket{}, err
	}
	return mqttPacket{typ: typ, body: body}, nil
}

func (c *mqttClient) read() mqttPacket {
	c.t.Helper()
	p, err := c.readPacket(time.Now().Add(5 * time.Second))
	if err != nil {
		c.t.Fatalf("mqtt read: %v", err)
	}
	return p
}

// await reads packets until one of type typ arrives and returns it;
// PUBLISH packets read meanwhile are acknowledged and kept for next, and a
// PUBREL for a QoS 2 message received is completed.
func (c *mqttClient) await(typ byte) mqttPacket {
	c.t.Helper()
	for {
		p := c.read()
		switch {
		case p.typ == typ:
			if typ == mqttPubRel {
				c.write(mqttPubComp, p.body)
			}
			return p
		case p.typ&0xf0 == mqttPublish:
			c.keep(p)
		case p.typ == mqttPubRel:
			c.write(mqttPubComp, p.body)
		default:
			c.t.Fatalf("mqtt: got packet %#x, want %#x", p.typ, typ)
		}
	}
}

// keep decodes a PUBLISH, acknowledges it (PUBACK at QoS 1, PUBREC at
// QoS 2) and queues it.
func (c *mqttClient) keep(p mqttPacket) mqttMsg {
	c.t.Helper()
	m, pid, err := mqttDecodePublish(p)
	if err != nil {
		c.t.Fatal(err)
	}
	switch m.qos {
	case 1:
		c.write(mqttPubAck, binary.BigEndian.AppendUint16(nil, pid))
	case 2:
		c.write(mqttPubRec, binary.BigEndian.AppendUint16(nil, pid))
	}
	c.msgs = append(c.msgs, m)
	return m
}

func mqttDecodePublish(p mqttPacket) (mqttMsg, uint16, error) {
	m := mqttMsg{qos: (p.typ >> 1) & 3}
	b := p.body
	if len(b) < 2 {
		return m, 0, errors.New("mqtt: short PUBLISH")
	}
	tl := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+tl {
		return m, 0, errors.New("mqtt: short PUBLISH topic")
	}
	m.topic, b = string(b[2:2+tl]), b[2+tl:]
	var pid uint16
	if m.qos > 0 {
		if len(b) < 2 {
			return m, 0, errors.New("mqtt: PUBLISH without packet id")
		}
		pid, b = binary.BigEndian.Uint16(b), b[2:]
	}
	m.payload = string(b)
	return m, pid, nil
}

func (c *mqttClient) nextPID() uint16 {
	c.pid++
	return c.pid
}

// subscribe subscribes to filter at qos and returns the SUBACK return code
// (the granted QoS, or mqttSubFailure).
func (c *mqttClient) subscribe(filter string, qos byte) byte {
	c.t.Helper()
	pid := c.nextPID()
	body := binary.BigEndian.AppendUint16(nil, pid)
	body = mqttAppendString(body, filter)
	body = append(body, qos)
	c.write(mqttSubscribe, body)
	p := c.await(mqttSubAck)
	if len(p.body) != 3 || binary.BigEndian.Uint16(p.body) != pid {
		c.t.Fatalf("mqtt: SUBACK % x for packet id %d", p.body, pid)
	}
	return p.body[2]
}

// publish publishes payload to topic at QoS 1 and waits for the PUBACK.
// nats-server acknowledges a publish its permissions drop as well.
func (c *mqttClient) publish(topic, payload string) {
	c.t.Helper()
	pid := c.nextPID()
	body := mqttAppendString(nil, topic)
	body = binary.BigEndian.AppendUint16(body, pid)
	body = append(body, payload...)
	c.write(mqttPublish|1<<1, body)
	p := c.await(mqttPubAck)
	if len(p.body) != 2 || binary.BigEndian.Uint16(p.body) != pid {
		c.t.Fatalf("mqtt: PUBACK % x for packet id %d", p.body, pid)
	}
}

// publish2 publishes payload to topic at QoS 2: PUBLISH, PUBREC, PUBREL,
// PUBCOMP. nats-server completes the exchange for a publish its
// permissions drop as well.
func (c *mqttClient) publish2(topic, payload string) {
	c.t.Helper()
	pid := c.nextPID()
	id := binary.BigEndian.AppendUint16(nil, pid)
	body := mqttAppendString(nil, topic)
	body = append(body, id...)
	body = append(body, payload...)
	c.write(mqttPublish|2<<1, body)
	if p := c.await(mqttPubRec); string(p.body) != string(id) {
		c.t.Fatalf("mqtt: PUBREC % x for packet id %d", p.body, pid)
	}
	c.write(mqttPubRel, id)
	if p := c.await(mqttPubComp); string(p.body) != string(id) {
		c.t.Fatalf("mqtt: PUBCOMP % x for packet id %d", p.body, pid)
	}
}

// ping round-trips a PINGREQ: the server has handled every packet sent
// before it once the PINGRESP arrives.
func (c *mqttClient) ping() {
	c.t.Helper()
	c.write(mqttPingReq, nil)
	c.await(mqttPingResp)
}

// next returns the next PUBLISH the server sends, within timeout.
func (c *mqttClient) next(timeout time.Duration) (mqttMsg, error) {
	c.t.Helper()
	if len(c.msgs) > 0 {
		m := c.msgs[0]
		c.msgs = c.msgs[1:]
		return m, nil
	}
	deadline := time.Now().Add(timeout)
	for {
		p, err := c.readPacket(deadline)
		if err != nil {
			return mqttMsg{}, fmt.Errorf("mqtt: no message: %w", err)
		}
		if p.typ&0xf0 == mqttPublish {
			c.keep(p)
			m := c.msgs[0]
			c.msgs = c.msgs[1:]
			return m, nil
		}
	}
}
