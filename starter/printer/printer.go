// Package printer writes what the operator's status, list and report
// commands show, in the format --output chooses (the Temporal CLI is the
// model):
//
//   - text: a list as an aligned table, one thing as a block of labelled
//     lines;
//   - json: one JSON document (an array for a list);
//   - jsonl: one JSON object per line (a list's rows, or the one thing).
//
// Every format carries the same fields: the exported fields of the row's
// struct under their json names. Text headers and labels are made from those
// names ("error_type" is ERROR TYPE), unless a field's `text` tag names it
// otherwise, and text shows each value readably (times in RFC 3339, a
// Seconds as a duration, nothing as "-").
package printer

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
	"time"
)

// Format is an output format, a pflag.Value for --output.
type Format string

// The formats.
const (
	Text  Format = "text"
	JSON  Format = "json"
	JSONL Format = "jsonl"
)

// Formats lists the formats, for help texts.
const Formats = "text|json|jsonl"

// String is the format's name.
func (f *Format) String() string {
	if *f == "" {
		return string(Text)
	}
	return string(*f)
}

// Set accepts one of the formats' names.
func (f *Format) Set(s string) error {
	switch Format(s) {
	case Text, JSON, JSONL:
		*f = Format(s)
		return nil
	}
	return fmt.Errorf("%q is not an output format: use one of %s", s, Formats)
}

// Type names the flag's kind in help texts.
func (f *Format) Type() string { return "format" }

// Printer writes rows and things to Out in its Format.
type Printer struct {
	Out    io.Writer
	Format Format
}

// IsText reports whether the output is for people rather than scripts.
func (p Printer) IsText() bool { return p.Format == "" || p.Format == Text }

// Texter is a value with its own text form (the json form is its JSON).
type Texter interface {
	Text() string
}

// TextBlock is a thing that writes its own text form; it must show the same
// fields as its JSON.
type TextBlock interface {
	WriteText(w io.Writer) error
}

// List prints rows, a slice of structs (or of pointers to structs): a table
// under a header row in text, an array in json, one object a line in jsonl.
func (p Printer) List(rows any) error {
	v := reflect.ValueOf(rows)
	if v.Kind() != reflect.Slice {
		return fmt.Errorf("printer: a list must be a slice, not %T", rows)
	}
	switch {
	case p.IsText():
		return writeTable(p.Out, v, "")
	case p.Format == JSONL:
		for i := range v.Len() {
			if err := writeJSONLine(p.Out, v.Index(i).Interface()); err != nil {
				return err
			}
		}
		return nil
	default:
		if v.Len() == 0 {
			_, err := io.WriteString(p.Out, "[]\n")
			return err
		}
		return writeJSONDocument(p.Out, rows)
	}
}

// Object prints one thing, a struct: a block of labelled lines in text (or
// its own WriteText), one document in json, one line in jsonl.
func (p Printer) Object(v any) error {
	switch {
	case p.IsText():
		if b, ok := v.(TextBlock); ok {
			return b.WriteText(p.Out)
		}
		return writeBlock(p.Out, reflect.ValueOf(v), "")
	case p.Format == JSONL:
		return writeJSONLine(p.Out, v)
	default:
		return writeJSONDocument(p.Out, v)
	}
}

func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("printer: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func writeJSONDocument(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("printer: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// column is one field of a row's struct.
type column struct {
	index []int // for FieldByIndex (embedded structs flattened)
	name  string
	title string
}

// Columns lists the json names of a row type's fields, in order: what every
// format carries.
func Columns(row any) []string {
	t := reflect.TypeOf(row)
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	var names []string
	for _, c := range columnsOf(t) {
		names = append(names, c.name)
	}
	return names
}

// Titles lists the text headers of a row type's fields, in order.
func Titles(row any) []string {
	t := reflect.TypeOf(row)
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	var titles []string
	for _, c := range columnsOf(t) {
		titles = append(titles, c.title)
	}
	return titles
}

// columnsOf lists the fields json shows, embedded structs flattened.
func columnsOf(t reflect.Type) []column {
	var cols []column
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for _, c := range columnsOf(f.Type) {
				c.index = append([]int{i}, c.index...)
				cols = append(cols, c)
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		title := f.Tag.Get("text")
		if title == "" {
			title = strings.ToUpper(strings.ReplaceAll(name, "_", " "))
		}
		cols = append(cols, column{index: []int{i}, name: name, title: title})
	}
	return cols
}

// WriteTable writes rows, a slice of structs, as the text table List
// writes, each line starting with indent: for a TextBlock made of tables.
func WriteTable(w io.Writer, rows any, indent string) error {
	v := reflect.ValueOf(rows)
	if v.Kind() != reflect.Slice {
		return fmt.Errorf("printer: a table must be a slice, not %T", rows)
	}
	return writeTable(w, v, indent)
}

// writeTable writes a slice of structs as an aligned table, each line
// starting with indent.
func writeTable(w io.Writer, rows reflect.Value, indent string) error {
	t := rows.Type().Elem()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return fmt.Errorf("printer: a table's rows must be structs, not %s", t)
	}
	cols := columnsOf(t)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	cells := make([]string, len(cols))
	for i, c := range cols {
		cells[i] = c.title
	}
	fmt.Fprintln(tw, indent+strings.Join(cells, "\t"))
	for i := range rows.Len() {
		row := reflect.Indirect(rows.Index(i))
		for j, c := range cols {
			cells[j] = oneLine(TextOf(row.FieldByIndex(c.index)))
		}
		fmt.Fprintln(tw, indent+strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// writeBlock writes a struct as "label  value" lines; a field that is a
// slice of structs becomes a table under its label, a struct a block.
func writeBlock(w io.Writer, v reflect.Value, indent string) error {
	v = reflect.Indirect(v)
	if v.Kind() != reflect.Struct {
		return fmt.Errorf("printer: a block must be a struct, not %s", v.Type())
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range columnsOf(v.Type()) {
		f := v.FieldByIndex(c.index)
		label := strings.ToLower(c.title)
		switch {
		case isStructSlice(f) && f.Len() == 0:
			fmt.Fprintf(tw, "%s%s\t-\n", indent, label)
		case isStructSlice(f):
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(w, "%s%s\n", indent, label)
			if err := writeTable(w, f, indent+"  "); err != nil {
				return err
			}
		case isPlainStruct(f):
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(w, "%s%s\n", indent, label)
			if err := writeBlock(w, f, indent+"  "); err != nil {
				return err
			}
		default:
			fmt.Fprintf(tw, "%s%s\t%s\n", indent, label, oneLine(TextOf(f)))
		}
	}
	return tw.Flush()
}

var timeType = reflect.TypeFor[time.Time]()

func isStructSlice(v reflect.Value) bool {
	if v.Kind() != reflect.Slice {
		return false
	}
	t := v.Type().Elem()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct && t != timeType
}

func isPlainStruct(v reflect.Value) bool {
	v = reflect.Indirect(v)
	return v.IsValid() && v.Kind() == reflect.Struct && v.Type() != timeType && !v.Type().Implements(reflect.TypeFor[Texter]())
}

// TextOf is a value as text shows it: "-" for nothing (nil, "", a zero
// time), times in RFC 3339 (UTC), a Texter by its Text, yes/no for bools,
// a slice's items joined by ", ".
func TextOf(v reflect.Value) string {
	if !v.IsValid() {
		return "-"
	}
	if v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return "-"
		}
		return TextOf(v.Elem())
	}
	if v.CanInterface() {
		switch x := v.Interface().(type) {
		case time.Time:
			if x.IsZero() {
				return "-"
			}
			return x.UTC().Format(time.RFC3339)
		case Texter:
			return x.Text()
		case fmt.Stringer:
			if s := x.String(); s != "" {
				return s
			}
			return "-"
		}
	}
	switch v.Kind() {
	case reflect.String:
		if v.String() == "" {
			return "-"
		}
		return v.String()
	case reflect.Bool:
		if v.Bool() {
			return "yes"
		}
		return "no"
	case reflect.Slice, reflect.Array:
		if v.Len() == 0 {
			return "-"
		}
		parts := make([]string, v.Len())
		for i := range v.Len() {
			parts[i] = TextOf(v.Index(i))
		}
		return strings.Join(parts, ", ")
	case reflect.Float32, reflect.Float64:
		return fmt.Sprintf("%.4g", v.Float())
	}
	return fmt.Sprint(v.Interface())
}

// oneLine keeps a table cell on its line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
