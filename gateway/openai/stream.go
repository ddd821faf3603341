package openai

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
)

// StreamCopier passes an SSE stream through event by event, flushing each
// one at once, and watches for the usage chunk.
type StreamCopier struct {
	// DropUsageChunk hides the final usage-only chunk, for callers that did
	// not ask for it (the gateway asks upstream anyway to price the call).
	DropUsageChunk bool

	Usage    Usage
	HasUsage bool
	Chunks   int // content chunks seen, a fallback measure of output
	Done     bool
}

var (
	dataPrefix = []byte("data:")
	doneMarker = []byte("[DONE]")
	usageKey   = []byte(`"usage"`)
	newline    = []byte("\n")
)

// Copy reads events from upstream and writes them to w, calling flush after
// each. It returns when upstream ends or a read/write fails.
func (c *StreamCopier) Copy(w io.Writer, flush func(), upstream io.Reader) error {
	// Events are small; a longer line is gathered across reads below. Each
	// stream in flight holds this buffer, so it is kept small.
	r := bufio.NewReaderSize(upstream, 4096)
	var event bytes.Buffer
	midLine := false
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: keep it whole.
			event.Write(line)
			midLine = true
			continue
		}
		event.Write(line)
		blank := !midLine && len(line) > 0 && len(bytes.TrimSpace(line)) == 0
		midLine = false
		if err != nil && !blank {
			// The stream ended inside an event. Written as it is, a torn
			// JSON line would run into the error event that follows and the
			// caller's SSE parser would fail on both. Only a clean end
			// after whole lines (a server that omits the last blank line)
			// passes, completed with the blank line.
			whole := bytes.HasSuffix(event.Bytes(), newline) || isDone(event.Bytes())
			if err != io.EOF || !whole {
				event.Reset()
			} else if event.Len() > 0 {
				for !bytes.HasSuffix(event.Bytes(), []byte("\n\n")) {
					event.WriteByte('\n')
				}
			}
		}
		if event.Len() > 0 && (blank || err != nil) {
			if c.keep(event.Bytes()) {
				if _, werr := w.Write(event.Bytes()); werr != nil {
					return werr
				}
				// Events already read together go out together; otherwise
				// each is sent the moment it arrives.
				if r.Buffered() == 0 {
					flush()
				}
			}
			event.Reset()
		}
		if err == io.EOF {
			flush()
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// isDone reports whether an event is the [DONE] marker alone.
func isDone(event []byte) bool {
	data, ok := bytes.CutPrefix(bytes.TrimSpace(event), dataPrefix)
	return ok && bytes.Equal(bytes.TrimSpace(data), doneMarker)
}

// keep inspects one event and says whether to pass it on.
func (c *StreamCopier) keep(event []byte) bool {
	for rest := event; len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, newline)
		data, ok := bytes.CutPrefix(bytes.TrimSpace(line), dataPrefix)
		if !ok {
			continue
		}
		data = bytes.TrimSpace(data)
		if bytes.Equal(data, doneMarker) {
			c.Done = true
			continue
		}
		c.Chunks++
		if !hasUsageObject(data) {
			continue
		}
		var chunk struct {
			Choices []json.RawMessage `json:"choices"`
			Usage   *Usage            `json:"usage"`
		}
		if json.Unmarshal(data, &chunk) != nil || chunk.Usage == nil {
			continue
		}
		c.Usage, c.HasUsage = *chunk.Usage, true
		if len(chunk.Choices) == 0 {
			c.Chunks--
			if c.DropUsageChunk {
				return false
			}
		}
	}
	return true
}

// hasUsageObject reports whether a chunk may carry usage: a "usage" key
// followed by an object. With include_usage every chunk but the last says
// "usage":null, and decoding each of them was the stream's main cost. A
// false yes only costs a decode.
func hasUsageObject(data []byte) bool {
	for {
		i := bytes.Index(data, usageKey)
		if i < 0 {
			return false
		}
		data = bytes.TrimLeft(data[i+len(usageKey):], " \t\r\n")
		if len(data) > 0 && data[0] == ':' {
			if v := bytes.TrimLeft(data[1:], " \t\r\n"); len(v) > 0 && v[0] == '{' {
				return true
			}
		}
	}
}
