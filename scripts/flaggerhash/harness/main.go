// The harness over the extracted k8s types and the real go-spew, one JSON document per stdin line:
//
//	fh layout  print the Go layout reachable from core/v1 PodTemplateSpec (no input)
//	fh hash    {pod template}                   -> {"hash", "dump"} (Flagger's ComputeHash)
//	fh sums    {"mode": "checksum", "tracked", "spec"} | {"mode": "configmap", "data"} |
//	           {"mode": "secret", "secret"}      -> canaryChecksum / config_tracker checksum
//
// The hash is computed as pkg/canary/spec.go computes it (FNV-32a over spew's "%#v" with Flagger's
// ConfigState, then rand.SafeEncodeString); Go versions before 1.22 write \b and \f in JSON as
// \u0008 and \u000c, which Flagger's Go does not: leave them out of config data checked here.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"reflect"
	"strings"

	"github.com/davecgh/go-spew/spew"

	corev1 "fh/k8s/corev1"
)

const alphanums = "bcdfghjklmnpqrstvwxz2456789"

func safeEncodeString(s string) string {
	r := make([]byte, len(s))
	for i, b := range []rune(s) {
		r[i] = alphanums[(int(b) % len(alphanums))]
	}
	return string(r)
}

var printer = spew.ConfigState{Indent: " ", SortKeys: true, DisableMethods: true, SpewKeys: true}

func computeHash(v interface{}) string {
	hasher := fnv.New32a()
	printer.Fprintf(hasher, "%#v", v)
	return safeEncodeString(fmt.Sprint(hasher.Sum32()))
}

type field struct {
	Name string `json:"n"`
	JSON string `json:"j,omitempty"`
	Type string `json:"t"`
}

type entry struct {
	Kind   string  `json:"k"`
	Elem   string  `json:"e,omitempty"`
	Key    string  `json:"key,omitempty"`
	Fields []field `json:"f,omitempty"`
}

func walk(t reflect.Type, out map[string]entry) {
	name := t.String()
	if _, ok := out[name]; ok {
		return
	}
	e := entry{Kind: t.Kind().String()}
	out[name] = e
	if name == "*time.Location" { // only ever printed nil here: its layout is not needed
		e.Elem = t.Elem().String()
		out[name] = e
		return
	}
	switch t.Kind() {
	case reflect.Ptr, reflect.Slice, reflect.Array:
		e.Elem = t.Elem().String()
		walk(t.Elem(), out)
	case reflect.Map:
		e.Key, e.Elem = t.Key().String(), t.Elem().String()
		walk(t.Key(), out)
		walk(t.Elem(), out)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			j := strings.Split(f.Tag.Get("json"), ",")[0]
			if j == "" && !f.Anonymous {
				j = f.Name
			}
			if f.PkgPath != "" { // unexported
				j = "-"
			}
			e.Fields = append(e.Fields, field{f.Name, j, f.Type.String()})
			walk(f.Type, out)
		}
	}
	out[name] = e
}

func main() {
	out := json.NewEncoder(os.Stdout)
	if os.Args[1] == "layout" {
		layout := map[string]entry{}
		walk(reflect.TypeOf(corev1.PodTemplateSpec{}), layout)
		delete(layout, "time.Location")
		check(out.Encode(layout))
		return
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	for in.Scan() {
		switch os.Args[1] {
		case "hash":
			var tmpl corev1.PodTemplateSpec
			if err := json.Unmarshal(in.Bytes(), &tmpl); err != nil {
				check(out.Encode(map[string]string{"error": err.Error()}))
				continue
			}
			check(out.Encode(map[string]string{"hash": computeHash(tmpl), "dump": printer.Sprintf("%#v", tmpl)}))
		case "sums":
			var line struct {
				Mode    string             `json:"mode"`
				Tracked *map[string]string `json:"tracked"`
				Spec    string             `json:"spec"`
				Data    map[string]string  `json:"data"`
				Secret  map[string][]byte  `json:"secret"`
			}
			check(json.Unmarshal(in.Bytes(), &line))
			var sum string
			switch line.Mode {
			case "checksum":
				sum = computeHash(struct {
					TrackedConfigs  *map[string]string
					LastAppliedSpec string
				}{line.Tracked, line.Spec})
			case "configmap", "secret":
				var b []byte
				var err error
				if line.Mode == "configmap" {
					b, err = json.Marshal(line.Data)
				} else {
					b, err = json.Marshal(line.Secret)
				}
				check(err)
				h := sha256.Sum256(b)
				sum = fmt.Sprintf("%x", h[:8])
			}
			check(out.Encode(map[string]string{"sum": sum}))
		}
	}
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}
