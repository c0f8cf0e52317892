"""A clone of this repository alone is whole: nothing it runs or links lies outside it.

Developers keep the team's spec and shared data beside the checkout, but a user
clones the repository by itself: data the proofs need, and every document the
README and docs/ link, must be inside it.
"""

import os
import pathlib
import re

from proof import workload

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: A path that reaches past the repository into the sibling checkout of the team's shared files.
OUTSIDE = re.compile(r"\.\.[/\\]shared\b|/\s*[\"']shared[\"']\s*/")
#: The one thing beside the checkout the project may name: the CouchDB-replication peer that
#: `make bench` compares with when it is there. It is a comparison, not a part: without it the bench
#: says so and measures hemsync alone (tests/proof/test_bench_peer.py proves that path).
OPTIONAL_PEER = re.compile(r"bench-peer")
SKIPPED = {".git", ".venv", "var", "__pycache__", ".pytest_cache", ".hypothesis", "build"}
BINARY = (".db", ".db-wal", ".db-shm", ".png", ".gz")
#: A markdown link's target: [text](target).
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def repository_text_files():
    """Every text file of the repository (code, Makefile, CI, docs, data), skipping environments and databases."""
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [s for s in subfolders if s not in SKIPPED and not s.endswith(".egg-info")]
        for name in files:
            path = pathlib.Path(folder) / name
            if name.endswith(BINARY):
                continue
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue


def test_the_benchmark_vocabulary_is_part_of_the_repository(monkeypatch):
    monkeypatch.delenv(workload.VOCABULARY_ENV, raising=False)
    assert workload.DEFAULT_VOCABULARY.is_relative_to(ROOT)
    words = workload.vocabulary.__wrapped__()
    assert len(words) == 2754 and all(w == w.strip() and w for w in words)


def test_hemsync_vocabulary_still_names_another_file(monkeypatch, tmp_path):
    other = tmp_path / "words.txt"
    other.write_text("feber\nhosta\n\n", encoding="utf-8")
    monkeypatch.setenv(workload.VOCABULARY_ENV, str(other))
    assert workload.vocabulary.__wrapped__() == ("feber", "hosta")


def test_nothing_in_the_repository_reaches_a_checkout_beside_it():
    reaching = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
                for path, text in repository_text_files()
                for n, line in enumerate(text.splitlines(), 1)
                if OUTSIDE.search(line) and not OPTIONAL_PEER.search(line)]
    assert reaching == []


def test_every_link_in_the_docs_names_a_file_in_the_repository():
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for document in documents:
        for target in LINK.findall(document.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            linked = (document.parent / target.split("#", 1)[0]).resolve()
            if not linked.is_relative_to(ROOT) or not linked.exists():
                broken.append(f"{document.relative_to(ROOT)}: {target}")
    assert broken == []

