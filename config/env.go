package config

import (
	"reflect"
	"strconv"
	"strings"
)

// EnvPrefix starts every variable the configuration reads.
const EnvPrefix = "POSTHOUSE_"

// EnvConfigFile names the config file when --config is not given. The
// command reads it; ApplyEnv ignores it.
const EnvConfigFile = "POSTHOUSE_CONFIG"

// ApplyEnv overrides keys from environment entries ("KEY=value", as
// os.Environ returns them). POSTHOUSE_<SECTION>_<KEY> sets a key of a
// section, POSTHOUSE_HOSTNAME and POSTHOUSE_DATA_DIR the top-level keys. An
// unknown POSTHOUSE_ variable or a bad value is an *Error.
func (c *Config) ApplyEnv(environ []string) error {
	if c.origins == nil {
		c.origins = map[string]origin{}
	}
	var problems []Problem
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || name == EnvConfigFile {
			continue
		}
		var key *keyInfo
		for i := range schema {
			if schema[i].env == name {
				key = &schema[i]
				break
			}
		}
		if key == nil {
			problems = append(problems, Problem{File: "environment", Key: name, Msg: "unknown variable",
				Hint: envHint(name)})
			continue
		}
		if err := setFromString(reflect.ValueOf(c).Elem().FieldByIndex(key.index), value); err != nil {
			problems = append(problems, Problem{File: "environment", Key: name, Msg: err.Error(), Hint: "like " + example(*key)})
			continue
		}
		c.origins[key.path] = origin{env: name}
	}
	if len(problems) > 0 {
		return &Error{Problems: problems}
	}
	return nil
}

func envHint(name string) string {
	best, bestD := "", 1<<30
	for _, k := range schema {
		if d := editDistance(name, k.env); d < bestD {
			best, bestD = k.env, d
		}
	}
	if bestD <= 3 {
		return "did you mean " + best + "?"
	}
	return "variables are POSTHOUSE_<SECTION>_<KEY>, e.g. POSTHOUSE_LISTEN_SMTP, POSTHOUSE_DATA_DIR"
}

// setFromString parses an environment value into a field.
func setFromString(v reflect.Value, s string) error {
	switch {
	case v.Type() == byteSizeType:
		b, err := ParseByteSize(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(b))
	case v.Type() == durationType:
		d, err := ParseDuration(s)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(d))
	case v.Type() == stringsType:
		// A list from the environment: comma- or space-separated.
		list := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
		if list == nil {
			list = []string{}
		}
		v.Set(reflect.ValueOf(list))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return &valueError{"want true or false, got " + strconv.Quote(s)}
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return &valueError{"want an integer, got " + strconv.Quote(s)}
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return &valueError{"want a number, got " + strconv.Quote(s)}
		}
		v.SetFloat(f)
	default:
		return &valueError{"cannot be set from the environment"}
	}
	return nil
}

type valueError struct{ msg string }

func (e *valueError) Error() string { return e.msg }
