package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
)

// CheckFiles opens every file the settings name (each key ending in _file,
// in every section), so that a missing or unreadable one stops the start
// before anything is listened on or written. Errors name the setting and the
// path, never the content.
func (c *Config) CheckFiles() error {
	var errs []error
	walkFiles(reflect.ValueOf(c).Elem(), "", func(key, path string) {
		if err := checkFile(path); err != nil {
			errs = append(errs, fmt.Errorf("config: %s: %w", key, err))
		}
	})
	return errors.Join(errs...)
}

func checkFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err // *PathError: "open PATH: no such file or directory"
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory, not a file", path)
	}
	return nil
}

// walkFiles calls fn with the dotted key and value of every non-empty string
// under v whose YAML key ends in _file.
func walkFiles(v reflect.Value, key string, fn func(key, path string)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkFiles(v.Elem(), key, fn)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" || !t.Field(i).IsExported() {
				continue
			}
			sub := name
			if key != "" {
				sub = key + "." + name
			}
			if f := v.Field(i); f.Kind() == reflect.String {
				if strings.HasSuffix(name, "_file") && f.String() != "" {
					fn(sub, f.String())
				}
			} else {
				walkFiles(f, sub, fn)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walkFiles(v.Index(i), fmt.Sprintf("%s[%d]", key, i), fn)
		}
	case reflect.Map:
		// In key order, so that errors come out the same on every run.
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		for _, k := range keys {
			walkFiles(v.MapIndex(k), fmt.Sprintf("%s[%q]", key, fmt.Sprint(k)), fn)
		}
	}
}
