package core

import (
	"compress/flate"
	"errors"
	"io"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// permessage-deflate (RFC 7692), inbound only. We offer the extension
// with client_no_context_takeover (we never compress, so we promise
// nothing we would have to keep) and a value-less client_max_window_bits
// (7.1.2.2: we accept any window the server names for what we send --
// we send nothing compressed -- and some servers negotiate only with
// clients that offer it), and accept either answer about the
// server's side: with server_no_context_takeover every message inflates on
// its own; without it (RFC 7692 7.1.1.1) the server's LZ77 window spans
// messages, and we give the inflater the last 32 KiB we inflated as its
// dictionary. We never compress what we send: RFC 7692 6 lets an endpoint
// send any message uncompressed, and trading messages are small.

// deflateOffer is the Sec-WebSocket-Extensions offer.
var deflateOffer = wsflate.Parameters{ClientNoContextTakeover: true, ClientMaxWindowBits: offeredBits}.Option()

// offeredBits is wsflate's value for a parameter without a value.
const offeredBits wsflate.WindowBits = 1

var errDeflateParams = errors.New("the server answered permessage-deflate with client_max_window_bits without a value, which RFC 7692 7.1.2.2 does not allow")

// acceptDeflate checks the server's answer to our offer (RFC 7692 5, 7.1):
// either no extension, or permessage-deflate with parameters we can honour.
// wsflate's Parse refuses unknown, repeated and out-of-range parameters;
// server_max_window_bits needs nothing from us, since compress/flate
// always inflates with a full 32 KiB window.
func acceptDeflate(exts []httphead.Option) (*inflater, error) {
	for _, opt := range exts {
		if string(opt.Name) != wsflate.ExtensionName {
			continue
		}
		var p wsflate.Parameters
		if err := p.Parse(opt); err != nil {
			return nil, err
		}
		if p.ClientMaxWindowBits == offeredBits { // a server's answer must name the window (8-15)
			return nil, errDeflateParams
		}
		return &inflater{takeover: !p.ServerNoContextTakeover}, nil
	}
	return nil, nil
}

// windowSize is deflate's LZ77 window: the most a back-reference can reach.
const windowSize = 32 << 10

// inflater decompresses one message at a time, reusing its flate state.
type inflater struct {
	state    wsflate.MessageState // tracks RSV1 of the frames wsutil reads
	r        *wsflate.Reader
	takeover bool   // the server keeps its window across messages
	window   []byte // with takeover, the last windowSize bytes inflated
}

// flateReader adapts compress/flate to wsflate's ReadResetter, so a reset
// reuses the decompressor's state instead of allocating a new one, primed
// with the window the server's next message may refer back into.
type flateReader struct {
	io.ReadCloser
	f *inflater
}

func (r flateReader) Reset(src io.Reader) {
	_ = r.ReadCloser.(flate.Resetter).Reset(src, r.f.window)
}

// reader returns src inflated, capped at limit+1 bytes so that a bomb is
// caught as "too big" after at most limit+1 bytes of output (RFC 7692 8.1
// leaves the limit to the endpoint).
func (f *inflater) reader(src io.Reader, limit int64) io.Reader {
	if f.r == nil {
		f.r = wsflate.NewReader(src, func(r io.Reader) wsflate.Decompressor {
			return flateReader{flate.NewReaderDict(r, f.window), f}
		})
	} else {
		f.r.Reset(src)
	}
	return io.LimitReader(f.r, limit+1)
}

// inflated records a message's output as the next message's window.
func (f *inflater) inflated(msg []byte) {
	if !f.takeover {
		return
	}
	if len(msg) >= windowSize {
		f.window = append(f.window[:0], msg[len(msg)-windowSize:]...)
		return
	}
	if keep := windowSize - len(msg); len(f.window) > keep {
		f.window = append(f.window[:0], f.window[len(f.window)-keep:]...)
	}
	f.window = append(f.window, msg...)
}

// compressed reports whether the message being read was sent compressed.
func (f *inflater) compressed(hdr ws.Header) bool { return f != nil && f.state.IsCompressed() }
