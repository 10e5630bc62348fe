#!/usr/bin/env python3
"""Render deploy/operator/ from the Helm chart: the chart is the one source of the install manifests.

    make manifests                                  (builds or reuses helm, then runs this)
    hack/render_manifests.py --helm PATH/TO/helm [--out DIR]

`helm template` with the values below, one file per chart template, each with a header saying where it
comes from. Helm's own labels (`helm.sh/chart`, `app.kubernetes.io/managed-by: Helm`) are dropped:
kubectl, not Helm, manages what `kubectl apply -k deploy/` installs. The CRD is not rendered here
(deploy/kustomization.yaml includes crds/), nor the namespace (deploy/namespace.yaml; the chart has
no Namespace template). tests/chart/test_kustomize.py checks the committed files equal a fresh
rendering.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CHART = REPO_ROOT / "charts" / "together-operator"
RELEASE = NAMESPACE = "together-operator"
# The operator-wide key from the Secret deploy/credentials/together-api-key.yaml describes.
SET_VALUES = ("together.apiKey.existingSecret=together-api-key",)
# The chart's minimum (Chart.yaml kubeVersion), named because helm built without its release ldflags
# assumes 1.20. No template depends on the version, so the output does not either.
KUBE_VERSION = "1.30.0"
HELM_LABELS = re.compile(r"^ *(helm\.sh/chart: .*|app\.kubernetes\.io/managed-by: Helm)\n", re.MULTILINE)
SOURCE = re.compile(r"^# Source: together-operator/templates/(?P<file>[\w.-]+)\n", re.MULTILINE)


def helm_command(helm: str) -> list[str]:
    """Run from the repository root, so that the command in each file's header is the one to type."""
    sets = [arg for value in SET_VALUES for arg in ("--set", value)]
    chart = str(CHART.relative_to(REPO_ROOT))
    return [helm, "template", RELEASE, chart, "-n", NAMESPACE, f"--kube-version={KUBE_VERSION}", *sets]


def render(helm: str) -> dict[str, str]:
    """File name -> content: each chart template's documents, in the order helm renders them."""
    stream = subprocess.run(
        helm_command(helm), cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, check=True
    ).stdout
    stream = HELM_LABELS.sub("", stream)
    by_file: dict[str, list[str]] = {}
    for document in re.split(r"^---\n(?=# Source: )", stream, flags=re.MULTILINE):
        match = SOURCE.match(document)
        if match is None:
            if document.strip():
                raise SystemExit(f"a rendered document without a '# Source:' line:\n{document}")
            continue
        by_file.setdefault(match["file"], []).append(document[match.end() :].strip("\n") + "\n")
    header = (
        "# Generated from charts/together-operator/templates/{name} by `make manifests`, which runs\n"
        f"#   {' '.join(helm_command('helm'))}\n"
        "# Do not edit: change the chart, then run `make manifests`.\n"
    )
    return {name: header.format(name=name) + "---\n".join(docs) for name, docs in by_file.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--helm", required=True, help="the helm binary (hack/build-testbins.sh builds one)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "deploy" / "operator")
    args = parser.parse_args()
    files = render(args.helm)
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in set(args.out.glob("*.yaml")) - {args.out / name for name in files}:
        stale.unlink()
    for name, content in files.items():
        (args.out / name).write_text(content)


if __name__ == "__main__":
    main()
