package core

import (
	"compress/flate"
	"errors"
	"io"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// permessage-deflate (RFC 7692), inbound only. We offer the one variant
// wsflate's per-message reader can decode: no context takeover in either
// direction (RFC 7692 7.1.1), so every compressed message inflates on its
// own. We never compress what we send: RFC 7692 6 lets an endpoint send any
// message uncompressed, and trading messages are small.

// deflateOffer is the Sec-WebSocket-Extensions offer.
var deflateOffer = wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}.Option()

var errDeflateParams = errors.New("the server accepted permessage-deflate with parameters we cannot honour")

// acceptDeflate checks the server's answer to our offer (RFC 7692 5, 7.1):
// either no extension, or permessage-deflate with server_no_context_takeover.
func acceptDeflate(exts []httphead.Option) (bool, error) {
	for _, opt := range exts {
		if string(opt.Name) != wsflate.ExtensionName {
			continue
		}
		var p wsflate.Parameters
		if err := p.Parse(opt); err != nil {
			return false, err
		}
		if !p.ServerNoContextTakeover {
			return false, errDeflateParams
		}
		return true, nil
	}
	return false, nil
}

// inflater decompresses one message at a time, reusing its flate state.
type inflater struct {
	state wsflate.MessageState // tracks RSV1 of the frames wsutil reads
	r     *wsflate.Reader
}

// flateReader adapts compress/flate to wsflate's ReadResetter, so a reset
// reuses the decompressor's window instead of allocating a new one.
type flateReader struct{ io.ReadCloser }

func (f flateReader) Reset(r io.Reader) { _ = f.ReadCloser.(flate.Resetter).Reset(r, nil) }

func newFlateReader(r io.Reader) wsflate.Decompressor { return flateReader{flate.NewReader(r)} }

// reader returns src inflated, capped at limit+1 bytes so that a bomb is
// caught as "too big" after at most limit+1 bytes of output (RFC 7692 8.1
// leaves the limit to the endpoint).
func (f *inflater) reader(src io.Reader, limit int64) io.Reader {
	if f.r == nil {
		f.r = wsflate.NewReader(src, newFlateReader)
	} else {
		f.r.Reset(src)
	}
	return io.LimitReader(f.r, limit+1)
}

// compressed reports whether the message being read was sent compressed.
func (f *inflater) compressed(hdr ws.Header) bool { return f != nil && f.state.IsCompressed() }
