package hostile

import (
	"bytes"
	"io"
	"runtime"
	"testing"
)

func TestCasesHaveRequestedSize(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) {
			if seen[c.Name] {
				t.Fatalf("duplicate case name %q", c.Name)
			}
			seen[c.Name] = true
			min := int64(len(Bytes(c, 0)))
			for _, size := range []int64{0, 1, 100, 4096, 65537, 1 << 20} {
				n, err := io.Copy(io.Discard, c.Gen(size))
				if err != nil {
					t.Fatal(err)
				}
				if want := max(size, min); n != want {
					t.Errorf("Gen(%d) gave %d bytes, want %d", size, n, want)
				}
			}
			if a, b := Bytes(c, 10000), Bytes(c, 10000); !bytes.Equal(a, b) {
				t.Error("two generations differ")
			}
		})
	}
}

func TestReadInSmallPieces(t *testing.T) {
	c := Cases()[0]
	want := Bytes(c, 5000)
	r := c.Gen(5000)
	var got []byte
	buf := make([]byte, 7)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Error("reading 7 bytes at a time gives other bytes")
	}
}

func TestGenerationAllocatesLittle(t *testing.T) {
	for _, c := range Cases() {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		io.Copy(io.Discard, c.Gen(8<<20))
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 256<<10 {
			t.Errorf("%s: generating 8 MiB allocated %d bytes", c.Name, d)
		}
	}
}
