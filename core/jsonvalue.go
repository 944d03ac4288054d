package core

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
)

// jsonValue is one option's value in sws_connect's JSON config, as the
// Python package writes it: JSON itself, plus two tags for what JSON cannot
// carry, so that an error can name the Python type the user passed:
//
//	{"$type": "set"}        a value of that Python type
//	{"$float": "inf"}       a float that is not finite ("inf", "-inf", "nan")
//	{"$type": "dict", "$items": [[k, v], ...]}   a mapping
type jsonValue struct{ raw json.RawMessage }

// tagged is the form of a tagged value.
type tagged struct {
	Type  *string          `json:"$type"`
	Float *string          `json:"$float"`
	Items *json.RawMessage `json:"$items"`
}

func (v jsonValue) first() byte {
	b := bytes.TrimLeft(v.raw, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

func (v jsonValue) isNull() bool { return v.first() == 'n' }

func (v jsonValue) tag() (tagged, bool) {
	var t tagged
	if v.first() != '{' || json.Unmarshal(v.raw, &t) != nil || (t.Type == nil && t.Float == nil) {
		return tagged{}, false
	}
	return t, true
}

// typeName is the Python type of the value, for messages.
func (v jsonValue) typeName() string {
	switch v.first() {
	case 'n':
		return "None"
	case 't', 'f':
		return "bool"
	case '"':
		return "str"
	case '[':
		return "list"
	case '{':
		if t, ok := v.tag(); ok {
			if t.Float != nil {
				return "float"
			}
			return *t.Type
		}
		return "dict"
	}
	if bytes.ContainsAny(v.raw, ".eE") {
		return "float"
	}
	return "int"
}

func (v jsonValue) bool() (bool, bool) {
	switch v.first() {
	case 't':
		return true, true
	case 'f':
		return false, true
	}
	return false, false
}

func (v jsonValue) string() (string, bool) {
	var s string
	if v.first() != '"' || json.Unmarshal(v.raw, &s) != nil {
		return "", false
	}
	return s, true
}

// number reads an int or a float; a non-finite float comes back as such.
func (v jsonValue) number() (float64, bool) {
	if t, ok := v.tag(); ok && t.Float != nil {
		switch *t.Float {
		case "inf":
			return math.Inf(1), true
		case "-inf":
			return math.Inf(-1), true
		}
		return math.NaN(), true
	}
	switch v.typeName() {
	case "int", "float":
		f, err := strconv.ParseFloat(string(bytes.TrimSpace(v.raw)), 64)
		return f, err == nil || math.IsInf(f, 0)
	}
	return 0, false
}

// integer reads an int; ok is false for anything else, and inRange false
// for an int that does not fit in an int64.
func (v jsonValue) integer() (n int64, ok, inRange bool) {
	if v.typeName() != "int" {
		return 0, false, false
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(v.raw)), 10, 64)
	return n, true, err == nil
}

// list reads a JSON array.
func (v jsonValue) list() ([]jsonValue, bool) {
	var raw []json.RawMessage
	if v.first() != '[' || json.Unmarshal(v.raw, &raw) != nil {
		return nil, false
	}
	out := make([]jsonValue, len(raw))
	for i, r := range raw {
		out[i] = jsonValue{r}
	}
	return out, true
}

// items reads a mapping's items, tagged as above.
func (v jsonValue) items() ([]jsonValue, bool) {
	t, ok := v.tag()
	if !ok || t.Type == nil || *t.Type != "dict" || t.Items == nil {
		return nil, false
	}
	return jsonValue{*t.Items}.list()
}

// object reads a plain JSON object.
func (v jsonValue) object() (map[string]jsonValue, bool) {
	if _, tagged := v.tag(); tagged || v.first() != '{' {
		return nil, false
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(v.raw, &raw) != nil {
		return nil, false
	}
	out := make(map[string]jsonValue, len(raw))
	for k, r := range raw {
		out[k] = jsonValue{r}
	}
	return out, true
}
