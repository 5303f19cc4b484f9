"""Write the pinned package manifest that ``python -m diffucode.data.pypi_corpus`` builds from.

    python scripts/make_pypi_manifest.py --out src/diffucode/data/pypi_manifest.json          # the default list
    python scripts/make_pypi_manifest.py --out /tmp/m.json six attrs==23.2.0                # given names

For each candidate (``name`` or ``name==version``) it asks the registry's JSON API for that
release (the newest when no version is given), picks a pure-Python wheel (``*-none-any.whl``)
or else the sdist, and records name, version, filename, URL, sha256, size, package type and
the license. The license is read from the release's ``license_expression`` (PEP 639), then its
``License ::`` trove classifiers, then a short ``license`` field; a package whose license is
not recognised as permissive (``diffucode.data.pypi_corpus.PERMISSIVE``) is skipped and said
so, as is one with no pure wheel and no sdist. One request per candidate: keep the list short and
chosen (the registry is not a catalogue to scan).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from diffucode.data.pypi_corpus import MANIFEST_SCHEMA, PERMISSIVE, license_is_permissive, load_manifest

# Large, well-known, pure-Python projects under permissive licenses: few requests, much code.
DEFAULT_CANDIDATES = ["sympy", "django", "networkx", "pygments", "setuptools", "pip", "sphinx", "docutils",
                      "jinja2", "click", "attrs", "six"]

CLASSIFIERS = {
    "MIT License": "MIT", "MIT No Attribution License (MIT-0)": "MIT-0", "BSD License": "BSD",
    "Apache Software License": "Apache-2.0", "ISC License (ISCL)": "ISC",
    "Python Software Foundation License": "PSF-2.0", "The Unlicense (Unlicense)": "Unlicense",
    "Historical Permission Notice and Disclaimer (HPND)": "HPND", "zlib/libpng License": "Zlib",
    "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0", "Public Domain": "Public-Domain",
}
SHORT_LICENSES = {"mit": "MIT", "mit license": "MIT", "bsd": "BSD", "bsd license": "BSD", "new bsd": "BSD-3-Clause",
                  "bsd-3-clause": "BSD-3-Clause", "3-clause bsd": "BSD-3-Clause", "bsd-2-clause": "BSD-2-Clause",
                  "apache 2.0": "Apache-2.0", "apache-2.0": "Apache-2.0", "apache license 2.0": "Apache-2.0",
                  "apache license, version 2.0": "Apache-2.0", "apache software license": "Apache-2.0",
                  "isc": "ISC", "psf": "PSF-2.0", "unlicense": "Unlicense"}


def license_of(info: dict) -> str | None:
    """The license as declared by the release metadata, normalised to SPDX-like identifiers;
    None when it cannot be read."""
    expr = (info.get("license_expression") or "").strip()
    if expr:
        return expr
    found = []
    for c in info.get("classifiers") or []:
        if c.startswith("License ::"):
            name = c.split("::")[-1].strip()
            found.append(CLASSIFIERS.get(name, name.replace(" ", "-")))
    if found:
        return " AND ".join(sorted(set(found)))
    short = (info.get("license") or "").strip()
    return SHORT_LICENSES.get(short.lower()) if short and "\n" not in short else None


def canonical_url(url: str, api_url: str) -> str:
    """An absolute file URL: relative ones (some index mirrors answer ``../../packages/...``) are
    resolved against the API URL, and a hashed registry path is written as the canonical
    ``https://files.pythonhosted.org/packages/aa/bb/HASH/FILE``."""
    joined = urllib.parse.urljoin(api_url, url)
    m = re.search(r"/packages/(?:packages/)?([0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{20,}/[^/]+)$",
                  urllib.parse.urlsplit(joined).path)
    return f"https://files.pythonhosted.org/packages/{m.group(1)}" if m else joined


def pick_file(urls: list[dict]) -> dict | None:
    """A pure-Python wheel if there is one, else the sdist (.tar.gz preferred)."""
    wheels = [u for u in urls if u["packagetype"] == "bdist_wheel" and u["filename"].endswith("-none-any.whl")]
    if wheels:
        return sorted(wheels, key=lambda u: u["filename"])[0]
    sdists = [u for u in urls if u["packagetype"] == "sdist"]
    return sorted(sdists, key=lambda u: not u["filename"].endswith(".tar.gz"))[0] if sdists else None


def entry_for(candidate: str, index: str, timeout: float = 30.0) -> tuple[dict | None, str]:
    """``(manifest entry, message)``; entry is None when the candidate is skipped."""
    name, _, version = candidate.partition("==")
    url = f"{index.rstrip('/')}/{name}/{version + '/' if version else ''}json"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "diffucode"}),
                                    timeout=timeout) as r:
            data = json.load(r)
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as e:
        return None, f"skip {candidate}: {url}: {e}"
    info = data["info"]
    lic = license_of(info)
    if lic is None or not license_is_permissive(lic):
        return None, f"skip {candidate}: license {lic or info.get('license')!r} not recognised as permissive"
    f = pick_file(data.get("urls") or [])
    if f is None:
        return None, f"skip {candidate}: no pure-Python wheel and no sdist in {info['version']}"
    entry = {"name": info["name"], "version": info["version"], "filename": f["filename"],
             "url": canonical_url(f["url"], url),
             "sha256": f["digests"]["sha256"], "size": int(f["size"]), "packagetype": f["packagetype"],
             "license": lic}
    return entry, f"ok   {info['name']} {info['version']} {f['filename']} ({f['size'] / 1e6:.1f} MB, {lic})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("candidates", nargs="*", help="package names (name or name==version); default: a built-in list")
    ap.add_argument("--names", default=None, help="file with one candidate per line (# comments allowed)")
    ap.add_argument("--out", required=True, help="manifest JSON to write")
    ap.add_argument("--index", default="https://pypi.org/pypi", help="JSON API root")
    args = ap.parse_args(argv)
    cands = list(args.candidates)
    if args.names:
        cands += [ln.split("#")[0].strip() for ln in Path(args.names).read_text().splitlines()]
    cands = [c for c in cands if c] or DEFAULT_CANDIDATES
    entries = []
    for c in cands:
        entry, msg = entry_for(c, args.index)
        print(msg, flush=True)
        if entry is not None:
            entries.append(entry)
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"schema": MANIFEST_SCHEMA, "packages": entries}, indent=1) + "\n")
    load_manifest(tmp)  # the manifest we write must be one the builder accepts
    tmp.replace(out)
    total = sum(e["size"] for e in entries)
    print(f"{len(entries)} of {len(cands)} candidates -> {out} ({total / 1e6:.1f} MB of files); "
          f"permissive licenses accepted: {', '.join(sorted(PERMISSIVE))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
