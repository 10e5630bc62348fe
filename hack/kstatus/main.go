// kstatus prints the status that the upstream kstatus library (sigs.k8s.io/cli-utils/pkg/kstatus),
// which Flux, Argo CD's kstatus-based tools and `kubectl wait`-style tooling share, computes for
// Kubernetes objects. It proves that TogetherEndpoint's conditions mean to those tools what we say.
//
//	kstatus [FILE]    read one object, a List (kubectl get -o json) or a multi-document YAML
//	                  stream from FILE or stdin; print one JSON line per object:
//	                  {"kind":..., "namespace":..., "name":..., "status":"Current", "message":...}
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	input := stdin
	if len(args) > 1 {
		return errors.New("usage: kstatus [FILE]")
	}
	if len(args) == 1 && args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		input = f
	}
	objects, err := decode(input)
	if err != nil {
		return err
	}
	if len(objects) == 0 {
		return errors.New("no objects in the input")
	}
	encoder := json.NewEncoder(stdout)
	for _, obj := range objects {
		res, err := status.Compute(obj)
		if err != nil {
			return fmt.Errorf("%s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
		line := result{obj.GetKind(), obj.GetNamespace(), obj.GetName(), res.Status.String(), res.Message}
		if err := encoder.Encode(line); err != nil {
			return err
		}
	}
	return nil
}

// decode reads JSON or YAML documents; a List's items count as objects of their own.
func decode(input io.Reader) ([]*unstructured.Unstructured, error) {
	decoder := utilyaml.NewYAMLOrJSONDecoder(input, 4096)
	var objects []*unstructured.Unstructured
	for {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return objects, nil
			}
			return nil, err
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue // an empty YAML document
		}
		// Unstructured's own decoder keeps integers as int64, as kstatus expects of metadata.generation.
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw); err != nil {
			return nil, err
		}
		if obj.IsList() {
			err := obj.EachListItem(func(item runtime.Object) error {
				objects = append(objects, item.(*unstructured.Unstructured))
				return nil
			})
			if err != nil {
				return nil, err
			}
			continue
		}
		objects = append(objects, obj)
	}
}
