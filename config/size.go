package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ByteSize is a number of bytes. In TOML it is an integer or a string with a
// unit: B, KB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB (powers of 1024);
// K, M, G and T alone are read as the binary units. Units are case-insensitive.
type ByteSize int64

var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1000,
	"mb":  1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"tb":  1000 * 1000 * 1000 * 1000,
	"k":   1 << 10,
	"m":   1 << 20,
	"g":   1 << 30,
	"t":   1 << 40,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

// errSizeSyntax is wrapped by ParseByteSize's syntax errors.
var errSizeSyntax = errors.New(`want a size like "50MiB", "10MB" or a number of bytes`)

// ParseByteSize parses "50MiB", "10 MB", "1.5GiB" or "1048576".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.' || t[i] == '_') {
		i++
	}
	num := strings.ReplaceAll(t[:i], "_", "")
	unit := strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("bad size %q: %w", s, errSizeSyntax)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("bad size %q: unknown unit %q (%w)", s, t[i:], errSizeSyntax)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad size %q: %w", s, errSizeSyntax)
		}
		if n > math.MaxInt64/mult {
			return 0, fmt.Errorf("bad size %q: too large", s)
		}
		return ByteSize(n * mult), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q: %w", s, errSizeSyntax)
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 || math.IsNaN(v) {
		return 0, fmt.Errorf("bad size %q: too large", s)
	}
	return ByteSize(v), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (TOML strings).
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalText writes the size in the largest binary unit that divides it.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// String formats the size as "50MiB", falling back to a byte count.
func (b ByteSize) String() string {
	n := int64(b)
	if n == 0 {
		return "0"
	}
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// Duration is a time.Duration that reads and writes as a string: Go's syntax
// ("90s", "10m", "120h", "1h30m") plus whole days ("5d"). A bare number is
// refused, since it is never clear whether it means seconds or hours.
type Duration struct {
	time.Duration
}

// ParseDuration parses "10m", "120h" or "5d".
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if strings.HasSuffix(t, "d") {
		n, err := strconv.ParseInt(strings.TrimSuffix(t, "d"), 10, 64)
		if err != nil || n < 0 || n > math.MaxInt64/int64(24*time.Hour) {
			return Duration{}, fmt.Errorf(`bad duration %q: want a duration like "90s", "10m", "120h" or "5d"`, s)
		}
		return Duration{time.Duration(n) * 24 * time.Hour}, nil
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		if _, nerr := strconv.ParseFloat(t, 64); nerr == nil {
			return Duration{}, fmt.Errorf(`bad duration %q: a duration needs a unit, e.g. "%ss" or "%sm"`, s, t, t)
		}
		return Duration{}, fmt.Errorf(`bad duration %q: want a duration like "90s", "10m", "120h" or "5d"`, s)
	}
	return Duration{d}, nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String formats the duration compactly: "120h", "10m", "1h30m", "90s".
func (d Duration) String() string {
	v := d.Duration
	if v == 0 {
		return "0s"
	}
	if v%time.Second != 0 || v < 0 {
		return v.String()
	}
	var sb strings.Builder
	h := v / time.Hour
	m := (v % time.Hour) / time.Minute
	s := (v % time.Minute) / time.Second
	if h > 0 {
		fmt.Fprintf(&sb, "%dh", h)
	}
	if m > 0 {
		fmt.Fprintf(&sb, "%dm", m)
	}
	if s > 0 {
		fmt.Fprintf(&sb, "%ds", s)
	}
	return sb.String()
}

// errFreeSpaceSyntax is wrapped by ParseFreeSpace's errors.
var errFreeSpaceSyntax = errors.New(`want a size ("500MiB"), a percentage ("5%") or both ("1%, 200MiB": the larger)`)

// ParseFreeSpace reads [limits] min_free_space: a size ("500MiB"), a
// percentage of the file system ("5%", at most 50) or both separated by a
// comma ("1%, 200MiB"), the larger applying; "0" keeps no reserve.
func ParseFreeSpace(s string) (size ByteSize, percent float64, err error) {
	parts := strings.Split(s, ",")
	if len(parts) > 2 {
		return 0, 0, fmt.Errorf("bad free space %q: %w", s, errFreeSpaceSyntax)
	}
	sawSize, sawPct := false, false
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if num, ok := strings.CutSuffix(p, "%"); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || sawPct || math.IsNaN(f) || f < 0 || f > 50 {
				return 0, 0, fmt.Errorf("bad free space %q: a percentage is between 0%% and 50%% (%w)", s, errFreeSpaceSyntax)
			}
			percent, sawPct = f, true
			continue
		}
		n, err := ParseByteSize(p)
		if p == "" || err != nil || sawSize {
			return 0, 0, fmt.Errorf("bad free space %q: %w", s, errFreeSpaceSyntax)
		}
		size, sawSize = n, true
	}
	return size, percent, nil
}
