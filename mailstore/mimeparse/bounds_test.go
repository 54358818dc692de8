package mimeparse

import (
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore/mimeparse/hostile"
)

// checkTree verifies what every structure must satisfy, whatever the input:
// offsets inside the message and in order, bounded depth and size, at least
// one child per multipart, and no nil pieces.
func checkTree(t *testing.T, root *Part, size int64) {
	t.Helper()
	nodes := 0
	var walk func(pt *Part, depth int)
	walk = func(pt *Part, depth int) {
		nodes++
		if depth > MaxDepth {
			t.Fatalf("entity at depth %d, past MaxDepth", depth)
		}
		if !(0 <= pt.Start && pt.Start <= pt.BodyStart && pt.BodyStart <= pt.End && pt.End <= size) {
			t.Fatalf("bad offsets %d %d %d in a message of %d bytes", pt.Start, pt.BodyStart, pt.End, size)
		}
		if pt.Lines < 0 || pt.Lines > pt.End-pt.BodyStart {
			t.Fatalf("%d lines in %d bytes", pt.Lines, pt.End-pt.BodyStart)
		}
		switch pt.Kind {
		case KindMultipart:
			if len(pt.Children) == 0 {
				t.Fatal("multipart without children")
			}
			for _, c := range pt.Children {
				if c.Start < pt.BodyStart || c.End > pt.End {
					t.Fatalf("child [%d,%d) outside parent body [%d,%d)", c.Start, c.End, pt.BodyStart, pt.End)
				}
				walk(c, depth+1)
			}
		case KindMessage:
			if pt.Message == nil {
				t.Fatal("message part without its message")
			}
			if pt.Message.Start != pt.BodyStart || pt.Message.End != pt.End {
				t.Fatalf("encapsulated message [%d,%d) is not the body [%d,%d)", pt.Message.Start, pt.Message.End, pt.BodyStart, pt.End)
			}
			walk(pt.Message, depth+1)
		}
	}
	walk(root, 0)
	if nodes > 2*MaxParts+1 {
		t.Fatalf("%d entities", nodes)
	}
	checkStructure(t, root.BodyStructure(), 0)
}

func checkStructure(t *testing.T, bs imap.BodyStructure, depth int) {
	t.Helper()
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		if bs == nil || bs.Extended == nil || len(bs.Children) == 0 {
			t.Fatalf("multipart %+v cannot be written", bs)
		}
		for _, c := range bs.Children {
			checkStructure(t, c, depth+1)
		}
	case *imap.BodyStructureSinglePart:
		if bs == nil || bs.Extended == nil {
			t.Fatalf("single part %+v cannot be written", bs)
		}
		if m := bs.MessageRFC822; m != nil {
			if m.BodyStructure == nil || m.Envelope == nil {
				t.Fatal("message/rfc822 without structure or envelope")
			}
			checkStructure(t, m.BodyStructure, depth+1)
		} else if bs.Type == "message" && (bs.Subtype == "rfc822" || bs.Subtype == "global") {
			t.Fatal("message/rfc822 without its message: clients would misparse it")
		}
	default:
		t.Fatalf("body structure %T", bs)
	}
}

// parseAlloc parses r and returns the bytes allocated meanwhile.
func parseAlloc(t *testing.T, r io.Reader) (*Part, uint64) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	root, err := Parse(r)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	return root, after.TotalAlloc - before.TotalAlloc
}

// TestHostileBounded parses every hostile case and checks the bounds.
// Allocation covers everything the parser did (TotalAlloc, not what is
// live): a 64 MiB bomb must not cost more than a few MiB.
func TestHostileBounded(t *testing.T) {
	big := map[string]bool{"rfc822-nest": true, "many-parts": true, "deep-multipart": true, "deep-mixed": true, "long-header-field": true}
	for _, c := range hostile.Cases() {
		size := int64(8 << 20)
		if big[c.Name] && !testing.Short() && !raceEnabled {
			size = 64 << 20
		}
		if raceEnabled {
			size = 2 << 20
		}
		t.Run(c.Name, func(t *testing.T) {
			root, alloc := parseAlloc(t, c.Gen(size))
			checkTree(t, root, max(size, int64(len(hostile.Bytes(c, 0)))))
			if alloc > 8<<20 {
				t.Errorf("parsing %d MiB allocated %.1f MiB", size>>20, float64(alloc)/(1<<20))
			}
			t.Logf("%d MiB: %.2f MiB allocated", size>>20, float64(alloc)/(1<<20))
		})
	}
}

func depthOf(pt *Part) int {
	d := 0
	for _, c := range pt.Children {
		d = max(d, 1+depthOf(c))
	}
	if pt.Message != nil {
		d = max(d, 1+depthOf(pt.Message))
	}
	return d
}

func countParts(pt *Part) int {
	n := 1
	for _, c := range pt.Children {
		n += countParts(c)
	}
	if pt.Message != nil {
		n += countParts(pt.Message)
	}
	return n
}

func TestLimits(t *testing.T) {
	gen := func(name string, size int64) *Part {
		for _, c := range hostile.Cases() {
			if c.Name == name {
				root, err := Parse(c.Gen(size))
				if err != nil {
					t.Fatal(err)
				}
				return root
			}
		}
		t.Fatalf("no case %q", name)
		return nil
	}
	t.Run("rfc822 nesting stops at MaxDepth", func(t *testing.T) {
		root := gen("rfc822-nest", 1<<20)
		if d := depthOf(root); d != MaxDepth {
			t.Errorf("depth %d, want %d", d, MaxDepth)
		}
		leaf := root
		for leaf.Message != nil {
			leaf = leaf.Message
		}
		if leaf.Kind != KindOpaque {
			t.Errorf("innermost entity is %v, want KindOpaque", leaf.Kind)
		}
		bs := root.BodyStructure()
		for i := 0; i < MaxDepth; i++ {
			bs = bs.(*imap.BodyStructureSinglePart).MessageRFC822.BodyStructure
		}
		if sp := bs.(*imap.BodyStructureSinglePart); sp.Type != "application" || sp.Subtype != "octet-stream" {
			t.Errorf("opaque leaf is %s/%s", sp.Type, sp.Subtype)
		}
	})
	t.Run("deep multipart stops at MaxDepth", func(t *testing.T) {
		if d := depthOf(gen("deep-multipart", 1<<20)); d != MaxDepth {
			t.Errorf("depth %d, want %d", d, MaxDepth)
		}
	})
	t.Run("100,000 parts fold at MaxParts", func(t *testing.T) {
		// "--p\r\n\r\nx\r\n" is 10 bytes a part.
		size := int64(len(hostile.Bytes(hostile.Cases()[1], 0))) + 100000*10
		root := gen("many-parts", size)
		if n := len(root.Children); n != MaxParts-1 {
			t.Errorf("%d children, want %d", n, MaxParts-1)
		}
		last := root.Children[len(root.Children)-1]
		if last.End-last.BodyStart != 1 {
			t.Errorf("last listed part has %d bytes, want 1", last.End-last.BodyStart)
		}
		if root.End != size {
			t.Errorf("multipart body ends at %d, want %d", root.End, size)
		}
	})
	t.Run("digest entries fold when the header budget is spent", func(t *testing.T) {
		root := gen("digest-many", 8<<20)
		if n := countParts(root); n > MaxParts {
			t.Errorf("%d entities", n)
		}
		if root.Children[0].Kind != KindMessage {
			t.Errorf("digest entry without Content-Type is %v, want a message (RFC 2046 §5.1.5)", root.Children[0].Kind)
		}
	})
	t.Run("empty multipart has one empty part", func(t *testing.T) {
		root := gen("empty-multipart", 0)
		if len(root.Children) != 1 || root.Children[0].End != root.Children[0].BodyStart {
			t.Fatalf("children %+v", root.Children)
		}
		mp := root.BodyStructure().(*imap.BodyStructureMultiPart)
		if c := mp.Children[0].(*imap.BodyStructureSinglePart); c.Type != "text" || c.Subtype != "plain" || c.Size != 0 {
			t.Errorf("empty part is %+v", c)
		}
	})
	t.Run("header is cut at MaxHeaderBytes", func(t *testing.T) {
		root := gen("many-header-fields", 4<<20)
		if !root.HeaderCut {
			t.Error("4 MiB header not marked cut")
		}
		if root.Envelope == nil || len(root.Envelope.From) != 1 {
			t.Errorf("envelope %+v: the From before the cut is lost", root.Envelope)
		}
		if got := root.End - root.BodyStart; got != int64(len("body\r\n")) {
			t.Errorf("body of %d bytes, want the 6 after the header", got)
		}
	})
}

func TestParsePropagatesReadErrors(t *testing.T) {
	want := fmt.Errorf("disk on fire")
	_, err := Parse(io.MultiReader(hostile.Cases()[0].Gen(100000), &errReader{want}))
	if err != want {
		t.Errorf("err = %v", err)
	}
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }
