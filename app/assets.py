"""Refresh the front-end files the app serves itself, from packed npm packages."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

VENDOR_DIR = Path(__file__).parent / "static" / "vendor"

# package@range -> (folder under static/vendor, files inside the package)
PACKAGES: dict[str, tuple[str, list[str]]] = {
    "swagger-ui-dist@5": (
        "swagger-ui",
        [
            "swagger-ui.css",
            "swagger-ui-bundle.js",
            "swagger-ui-standalone-preset.js",
            "LICENSE",
        ],
    ),
    "bpmn-js@18": (
        "bpmn-js",
        [
            "dist/bpmn-navigated-viewer.production.min.js",
            "dist/bpmn-modeler.production.min.js",
            "dist/assets/diagram-js.css",
            "dist/assets/bpmn-js.css",
            "dist/assets/bpmn-font/css/bpmn.css",
            "dist/assets/bpmn-font/font/bpmn.woff2",
            "dist/assets/bpmn-font/font/bpmn.woff",
            "dist/assets/bpmn-font/font/bpmn.ttf",
            "dist/assets/bpmn-font/font/bpmn.eot",
            "dist/assets/bpmn-font/font/bpmn.svg",
            "LICENSE",
        ],
    ),
}


def refresh(packages: dict[str, tuple[str, list[str]]] = PACKAGES) -> list[dict]:
    """npm-pack each package, copy the chosen files, record version and licence."""
    records = []
    with tempfile.TemporaryDirectory() as work:
        for spec, (folder, files) in packages.items():
            records.append(_vendor(spec, folder, files, Path(work)))
    manifest = VENDOR_DIR / "VENDORED.json"
    manifest.write_text(json.dumps(records, indent=2) + "\n")
    return records


def _vendor(spec: str, folder: str, files: list[str], work: Path) -> dict:
    out = subprocess.run(
        ["npm", "pack", spec, "--json", "--pack-destination", str(work)],
        check=True,
        capture_output=True,
        text=True,
    )
    packed = json.loads(out.stdout)[0]
    target = VENDOR_DIR / folder
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(work / packed["filename"]) as archive:
        package_json = json.load(archive.extractfile("package/package.json"))
        digests = {}
        for name in files:
            data = archive.extractfile(f"package/{name}").read()
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(data)
            digests[name] = hashlib.sha256(data).hexdigest()
    return {
        "package": package_json["name"],
        "version": package_json["version"],
        "license": package_json.get("license"),
        "folder": f"static/vendor/{folder}",
        "files": digests,
    }
