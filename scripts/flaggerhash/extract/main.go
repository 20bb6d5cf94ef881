// extract writes, from k8s.io/api and k8s.io/apimachinery sources, Go packages holding the types
// Flagger's pod template hash walks: the type declarations reachable from core/v1
// PodTemplateSpec, verbatim and without methods (package clauses kept: go-spew prints
// "v1.PodTemplateSpec", "resource.Quantity"...), apimachinery's quantity parser, and the JSON
// decoders of Quantity, IntOrString and metav1.Time. CBOR support is left out.
//
//	go run . SRC OUT
package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

var fset = token.NewFileSet()

type pkg struct {
	name    string
	specs   map[string]*ast.TypeSpec
	imports map[string]string // alias in the source -> key in pkgs
	keep    map[string]bool
}

var pkgs = map[string]*pkg{}

func load(key, name string, files []string, imports map[string]string) {
	p := &pkg{name: name, specs: map[string]*ast.TypeSpec{}, imports: imports, keep: map[string]bool{}}
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		check(err)
		for _, d := range file.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.TYPE {
				for _, s := range g.Specs {
					ts := s.(*ast.TypeSpec)
					p.specs[ts.Name.Name] = ts
				}
			}
		}
	}
	pkgs[key] = p
}

func visit(p *pkg, name string) {
	if p.keep[name] {
		return
	}
	ts, ok := p.specs[name]
	if !ok {
		panic(fmt.Sprintf("type %s.%s not found", p.name, name))
	}
	p.keep[name] = true
	walk(p, ts.Type)
}

func walk(p *pkg, e ast.Expr) {
	switch t := e.(type) {
	case *ast.Ident:
		if _, ok := p.specs[t.Name]; ok {
			visit(p, t.Name)
		} else if t.Name != strings.ToLower(t.Name) {
			panic("unknown type " + t.Name)
		}
	case *ast.SelectorExpr:
		if other := pkgs[p.imports[t.X.(*ast.Ident).Name]]; other != nil {
			visit(other, t.Sel.Name)
		}
	case *ast.StarExpr:
		walk(p, t.X)
	case *ast.ArrayType:
		walk(p, t.Elt)
	case *ast.MapType:
		walk(p, t.Key)
		walk(p, t.Value)
	case *ast.StructType:
		for _, f := range t.Fields.List {
			walk(p, f.Type)
		}
	default:
		panic(fmt.Sprintf("unhandled %T", e))
	}
}

func emit(p *pkg, dir string, imports ...string) {
	var names []string
	for n := range p.keep {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	fmt.Fprintf(&b, "package %s\n\n", p.name)
	if len(imports) > 0 {
		fmt.Fprintf(&b, "import (\n%s\n)\n\n", strings.Join(imports, "\n"))
	}
	for _, n := range names {
		b.WriteString("type ")
		check(printer.Fprint(&b, fset, p.specs[n]))
		b.WriteString("\n\n")
	}
	write(filepath.Join(dir, "types.go"), b.Bytes())
}

// copyFile copies a Go file, keeping the declarations named in keep (all when keep is empty) and
// dropping whatever mentions CBOR or klog.
func copyFile(in, out, pkgName string, keep ...string) {
	f, err := parser.ParseFile(fset, in, nil, 0)
	check(err)
	want := map[string]bool{}
	for _, k := range keep {
		want[k] = true
	}
	var decls []ast.Decl
	for _, d := range f.Decls {
		var b bytes.Buffer
		check(printer.Fprint(&b, fset, d))
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.IMPORT {
			var specs []ast.Spec
			for _, s := range g.Specs {
				path := s.(*ast.ImportSpec).Path.Value
				if !strings.Contains(path, "cbor") && !strings.Contains(path, "klog") {
					specs = append(specs, s)
				}
			}
			g.Specs = specs
			decls = append(decls, g)
			continue
		}
		if strings.Contains(b.String(), "cbor") || strings.Contains(b.String(), "CBOR") || strings.Contains(b.String(), "klog") {
			continue
		}
		if len(want) > 0 && !want[declName(d)] {
			continue
		}
		decls = append(decls, d)
	}
	f.Decls = decls
	f.Name.Name = pkgName
	var b bytes.Buffer
	check(printer.Fprint(&b, fset, f))
	write(out, b.Bytes())
}

func declName(d ast.Decl) string {
	switch x := d.(type) {
	case *ast.FuncDecl:
		if x.Recv != nil {
			var b bytes.Buffer
			check(printer.Fprint(&b, fset, x.Recv.List[0].Type))
			return strings.TrimPrefix(b.String(), "*") + "." + x.Name.Name
		}
		return x.Name.Name
	case *ast.GenDecl:
		if ts, ok := x.Specs[0].(*ast.TypeSpec); ok {
			return ts.Name.Name
		}
	}
	return ""
}

func write(path string, data []byte) {
	check(os.MkdirAll(filepath.Dir(path), 0o755))
	check(os.WriteFile(path, data, 0o644))
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}

func main() {
	src, out := os.Args[1], os.Args[2]
	meta := src + "/apimachinery/pkg/apis/meta/v1/"
	load("core", "v1", []string{src + "/api/core/v1/types.go"},
		map[string]string{"metav1": "meta", "resource": "resource", "intstr": "intstr", "types": "types"})
	load("meta", "v1", []string{meta + "types.go", meta + "time.go", meta + "micro_time.go", meta + "duration.go", meta + "fieldsv1_byte.go"},
		map[string]string{"types": "types"})
	visit(pkgs["core"], "PodTemplateSpec")
	emit(pkgs["core"], out+"/corev1", `metav1 "fh/k8s/metav1"`, `resource "fh/k8s/resource"`, `intstr "fh/k8s/intstr"`)
	emit(pkgs["meta"], out+"/metav1", `types "fh/k8s/types"`, `"time"`)
	copyFile(meta+"time.go", out+"/metav1/time.go", "v1", "Time.UnmarshalJSON")
	for _, f := range []string{"amount", "math", "scale_int", "suffix", "quantity"} {
		copyFile(src+"/apimachinery/pkg/api/resource/"+f+".go", out+"/resource/"+f+".go", "resource")
	}
	write(out+"/types/uid.go", []byte("package types\n\ntype UID string\n"))
	// IntOrString: its declarations and JSON decoder, as in intstr.go
	intstr := src + "/apimachinery/pkg/util/intstr/intstr.go"
	copyFile(intstr, out+"/intstr/intstr.go", "intstr", "IntOrString", "Type", "IntOrString.UnmarshalJSON")
	data, err := os.ReadFile(out + "/intstr/intstr.go")
	check(err)
	text := string(data)
	start := strings.Index(text, "import (")
	end := strings.Index(text[start:], ")") + start + 1
	text = text[:start] + "import \"encoding/json\"\n\nconst (\n\tInt Type = iota\n\tString\n)\n" + text[end:]
	write(out+"/intstr/intstr.go", []byte(text))
	fmt.Println("types:", len(pkgs["core"].keep), "core/v1,", len(pkgs["meta"].keep), "meta/v1")
}
