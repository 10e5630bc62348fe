// kube-controller-manager, as upstream cmd/kube-controller-manager/controller-manager.go builds it.
// The local control plane runs only the controllers whose absence tests would notice (namespace
// deletion, garbage collection, service accounts), as every real cluster has them.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
