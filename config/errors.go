package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// Problem is one thing wrong with the configuration.
type Problem struct {
	File   string // config file, or "environment"
	Line   int    // 1-based; 0 when unknown
	Column int
	Key    string // dotted key ("limits.max_recipients") or variable name
	Msg    string
	Hint   string
}

// String formats the problem on one line: "file:line: key: msg (hint)".
func (p Problem) String() string {
	var sb strings.Builder
	if p.File != "" {
		sb.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&sb, ":%d", p.Line)
		}
		sb.WriteString(": ")
	}
	if p.Key != "" {
		sb.WriteString(p.Key)
		sb.WriteString(": ")
	}
	sb.WriteString(p.Msg)
	if p.Hint != "" {
		sb.WriteString(" (hint: ")
		sb.WriteString(p.Hint)
		sb.WriteString(")")
	}
	return sb.String()
}

// Error lists every problem found; its message has one problem per line.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// walkDocument checks a document against the schema before decoding: syntax,
// unknown keys and value types, each reported with its line. It records the
// position of every key it accepts in origins.
func walkDocument(data []byte, filename string, origins map[string]origin) []Problem {
	var p unstable.Parser
	p.Reset(data)
	var problems []Problem
	var table []string
	tables := map[string]int{} // [[x.y]] tables seen so far
	for p.NextExpression() {
		n := p.Expression()
		switch n.Kind {
		case unstable.Table:
			table = keyParts(n)
			pos := keyPos(&p, n)
			name := strings.Join(table, ".")
			if len(table) != 1 || !isSection(table[0]) {
				problems = append(problems, Problem{File: filename, Line: pos.Line, Column: pos.Column, Key: name,
					Msg: "unknown section [" + name + "]", Hint: unknownKeyHint(name)})
				table = nil
				// Skip the keys of an unknown section: one problem is enough.
				table = []string{"\x00"}
			}
		case unstable.ArrayTable:
			pos := keyPos(&p, n)
			name := strings.Join(keyParts(n), ".")
			if k, ok := lookupKey(name); ok && isTableArray(k.typ) {
				table = keyParts(n)
				tables[name]++
				continue
			}
			problems = append(problems, Problem{File: filename, Line: pos.Line, Column: pos.Column, Key: name,
				Msg: "[[" + name + "]] arrays of tables are not used by Posthouse", Hint: unknownKeyHint(name)})
			table = []string{"\x00"}
		case unstable.KeyValue:
			if len(table) == 1 && table[0] == "\x00" {
				continue
			}
			path := append(append([]string{}, table...), keyParts(n)...)
			problems = append(problems, checkValue(&p, filename, path, keyPos(&p, n), n.Value(), origins)...)
			if i := tables[strings.Join(table, ".")]; i > 0 {
				// Validate names a table's keys by its place in the list.
				key := strings.Join(path, ".")
				if o, ok := origins[key]; ok {
					origins[strings.Join(table, ".")+"["+strconv.Itoa(i)+"]"+key[len(strings.Join(table, ".")):]] = o
				}
			}
		}
	}
	if err := p.Error(); err != nil {
		msg := err.Error()
		line := 0
		col := 0
		if pe, ok := err.(*unstable.ParserError); ok && pe.Highlight != nil {
			sh := p.Shape(p.Range(pe.Highlight))
			line, col = sh.Start.Line, sh.Start.Column
		}
		problems = append(problems, Problem{File: filename, Line: line, Column: col, Msg: "TOML syntax error: " + msg,
			Hint: `strings need double quotes (data_dir = "/var/lib/posthouse"), sections are [name]`})
	}
	return problems
}

func checkValue(p *unstable.Parser, filename string, path []string, pos unstable.Position, v *unstable.Node, origins map[string]origin) []Problem {
	name := strings.Join(path, ".")
	if v.Kind == unstable.InlineTable && len(path) == 1 && isSection(path[0]) {
		var problems []Problem
		it := v.Children()
		for it.Next() {
			kv := it.Node()
			sub := append(append([]string{}, path...), keyParts(kv)...)
			problems = append(problems, checkValue(p, filename, sub, keyPos(p, kv), kv.Value(), origins)...)
		}
		return problems
	}
	k, ok := lookupKey(name)
	if !ok {
		msg := "unknown key"
		if len(path) == 1 && isSection(path[0]) {
			msg = "[" + name + "] is a section, not a value"
		}
		return []Problem{{File: filename, Line: pos.Line, Column: pos.Column, Key: name, Msg: msg, Hint: unknownKeyHint(name)}}
	}
	if want, ok := kindFits(k.typ, v.Kind); !ok {
		return []Problem{{File: filename, Line: pos.Line, Column: pos.Column, Key: name,
			Msg: "wrong type: got " + kindName(v.Kind) + ", want " + want, Hint: example(k)}}
	}
	// Values that decode through UnmarshalText are parsed here too, so their
	// errors carry the line.
	if v.Kind == unstable.String && (k.typ == byteSizeType || k.typ == durationType) {
		var err error
		if k.typ == byteSizeType {
			_, err = ParseByteSize(string(v.Data))
		} else {
			_, err = ParseDuration(string(v.Data))
		}
		if err != nil {
			return []Problem{{File: filename, Line: pos.Line, Column: pos.Column, Key: name, Msg: err.Error(), Hint: example(k)}}
		}
	}
	if v.Kind == unstable.Array && isTableArray(k.typ) {
		if it := v.Children(); it.Next() {
			return []Problem{{File: filename, Line: pos.Line, Column: pos.Column, Key: name,
				Msg: "write each entry as a [[" + name + "]] table", Hint: "[[" + name + "]] on a line of its own, then its keys"}}
		}
	} else if v.Kind == unstable.Array {
		it := v.Children()
		for it.Next() {
			if e := it.Node(); e.Kind != unstable.String {
				return []Problem{{File: filename, Line: pos.Line, Column: pos.Column, Key: name,
					Msg: "wrong type: an array element is " + kindName(e.Kind) + ", want strings", Hint: example(k)}}
			}
		}
	}
	origins[name] = origin{file: filename, line: pos.Line, col: pos.Column}
	return nil
}

// kindFits reports whether a TOML value kind can go into a field of type t,
// and names what the field wants.
func kindFits(t reflect.Type, k unstable.Kind) (string, bool) {
	switch {
	case t == byteSizeType:
		return `a size such as "50MiB" or an integer of bytes`, k == unstable.String || k == unstable.Integer
	case t == durationType:
		return `a duration string such as "10m" or "120h"`, k == unstable.String
	case t.Kind() == reflect.String:
		return "a string in double quotes", k == unstable.String
	case t.Kind() == reflect.Bool:
		return "true or false", k == unstable.Bool
	case t.Kind() == reflect.Int:
		return "an integer", k == unstable.Integer
	case t.Kind() == reflect.Float64:
		return "a number", k == unstable.Float || k == unstable.Integer
	case t == stringsType:
		return "an array of strings", k == unstable.Array
	case isTableArray(t):
		return "[[tables]]", k == unstable.Array
	}
	return t.String(), false
}

func kindName(k unstable.Kind) string {
	switch k {
	case unstable.String:
		return "a string"
	case unstable.Integer:
		return "an integer"
	case unstable.Float:
		return "a float"
	case unstable.Bool:
		return "a boolean"
	case unstable.Array:
		return "an array"
	case unstable.InlineTable:
		return "a table"
	case unstable.DateTime, unstable.LocalDate, unstable.LocalDateTime, unstable.LocalTime:
		return "a date/time"
	}
	return k.String()
}

// example shows the key with its default value, as a hint.
func example(k keyInfo) string {
	leaf := k.path[strings.LastIndexByte(k.path, '.')+1:]
	if k.index == nil { // a key of [[x.y]] tables
		switch {
		case k.typ == durationType:
			return leaf + ` = "30s"`
		case k.typ.Kind() == reflect.Bool:
			return leaf + " = true"
		case k.typ.Kind() == reflect.String:
			return leaf + ` = "…"`
		}
		return leaf + " = …"
	}
	v := reflect.ValueOf(Default()).Elem().FieldByIndex(k.index)
	switch v.Kind() {
	case reflect.String:
		s := v.String()
		if leaf == "hostname" {
			s = "mail.example.com"
		}
		if leaf == "resolver" {
			s = "127.0.0.1:53"
		}
		return fmt.Sprintf("%s = %q", leaf, s)
	case reflect.Int64:
		if k.typ == byteSizeType {
			return fmt.Sprintf("%s = %q", leaf, ByteSize(v.Int()).String())
		}
	case reflect.Struct:
		if k.typ == durationType {
			return fmt.Sprintf("%s = %q", leaf, v.Interface().(Duration).String())
		}
	case reflect.Slice:
		if k.typ == stringsType {
			q := make([]string, v.Len())
			for i := range q {
				q[i] = strconv.Quote(v.Index(i).String())
			}
			return fmt.Sprintf("%s = [%s]", leaf, strings.Join(q, ", "))
		}
	}
	return fmt.Sprintf("%s = %v", leaf, v.Interface())
}

func keyParts(n *unstable.Node) []string {
	var parts []string
	it := n.Key()
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

func keyPos(p *unstable.Parser, n *unstable.Node) unstable.Position {
	it := n.Key()
	if it.Next() {
		return p.Shape(it.Node().Raw).Start
	}
	return unstable.Position{}
}

// unknownKeyHint suggests the nearest known key or section.
func unknownKeyHint(name string) string {
	candidates := append(Keys(), sections...)
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := editDistance(strings.ToLower(name), c)
		// Compare the last component too: "limits.max_recipient" vs a key
		// written in the wrong section.
		if i := strings.LastIndexByte(c, '.'); i >= 0 {
			if dd := editDistance(strings.ToLower(name[strings.LastIndexByte(name, '.')+1:]), c[i+1:]) + 1; dd < d {
				d = dd
			}
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	last := name[strings.LastIndexByte(name, '.')+1:]
	if best != "" && bestD <= 3 && bestD*3 <= len(last) {
		if strings.Contains(best, ".") {
			i := strings.IndexByte(best, '.')
			return fmt.Sprintf("did you mean %s in [%s]?", best[i+1:], best[:i])
		}
		if isSection(best) {
			return fmt.Sprintf("did you mean [%s]?", best)
		}
		return fmt.Sprintf("did you mean %s?", best)
	}
	s := append([]string{}, sections...)
	sort.Strings(s)
	return "known sections: " + strings.Join(s, ", ") + "; run `posthouse check-config` on an empty file to see every key"
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
