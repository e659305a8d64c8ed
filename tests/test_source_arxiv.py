"""arXiv LaTeX: the reader (tarballs, bulk .gz, plain .tex with inputs on disk) and the paper's cleaning rules,
on the real paper sources in data/samples/sources/arxiv/."""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from pathlib import Path

import pytest
from apache_beam.io.filesystems import FileSystems

from filters.document import Document, Rejection
from filters.latex import ArxivCleanConfig, ArxivCleaner, clean_latex, find_macros, inline_inputs, strip_comments
from filters.prepared import iter_documents, read_manifest
from filters.registry import stage_class
from pipelines.formats import ReaderConfig, Repaired, Skip, parse_stream
from pipelines.read_arxiv import arxiv_id, choose_main
from tests.conftest import SAMPLES

ARXIV = SAMPLES / "sources" / "arxiv"
EMCEE = ARXIV / "emcee-mcmc-hammer" / "ms.tex"
BULK = ARXIV / "bulk-style" / "emcee-mcmc-hammer.gz"
SCIPY = ARXIV / "scipy-1.0.tar.gz"
DYNONET = ARXIV / "dynonet-2006.02250" / "ms.tex"
SCIPY_INPUTS = ["core-dev.tex", "subpackages.tex", "ckdtree.tex", "scipy-optimize.tex", "poly.tex", "consortium.tex"]
CKDTREE_SENTENCE = "organizes points in $k$-dimensional space, was rewritten in C++ with templated classes."


def read(path: Path, name: str = "paper", **options: object) -> list:
    with open(path, "rb") as stream:
        return list(parse_stream(stream, str(path), ReaderConfig(format="arxiv", **options), name))


def only_document(records: list) -> Document:
    docs = [r for r in records if isinstance(r, Document)]
    assert len(docs) == 1, records
    return docs[0]


def scipy_members() -> dict[str, bytes]:
    with tarfile.open(SCIPY) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()}


def cleaned(text: str, **options: object) -> str:
    result = clean_latex(text, ArxivCleanConfig(**options))
    assert result.reason is None
    return result.text


# --- the cleaning rules -------------------------------------------------------------------------------------


def test_registered_stage_cleans_and_notes_what_it_expanded():
    assert stage_class("arxiv_clean") is ArxivCleaner
    doc = Document(id="emcee", text=EMCEE.read_text(), source="arxiv")
    result = ArxivCleaner().run([doc])[0]
    assert isinstance(result, Document) and result is not doc
    assert result.metadata["arxiv_clean"] == {"macros_expanded": 92, "definitions_skipped": {}}


def test_user_macros_without_arguments_are_expanded_to_a_fixed_point():
    original = EMCEE.read_text()
    # \newcommand{\thisplain}{emcee} and \newcommand{\this}{\project{\thisplain}}: a macro inside a macro
    assert "\\newcommand{\\this}{\\project{\\thisplain}}" in original
    text = cleaned(original)
    body = strip_comments(original[original.index("\\section{Intro") : original.index("\\begin{thebibliography}")])
    uses = len(re.findall(r"\\this(?![A-Za-z])", body))
    assert uses == 12 and not re.search(r"\\this(?![A-Za-z])|\\thisplain", text)
    assert text.count("\\project{emcee}") == uses + body.count("\\project{emcee}")
    assert "\\numpy" in body and "\\numpy" not in text and "\\project{numpy}" in text
    assert "\\Sect{" in original and "\\sect{" in text  # macros with arguments are left alone
    assert "\\newcommand" not in text  # body definitions (affiliation numbers) are removed, not mangled


def test_everything_before_the_first_section_is_removed():
    original = EMCEE.read_text()
    text = cleaned(original)
    assert text.startswith("\\section{Introduction}\n\nProbabilistic data analysis")
    for front in ("\\documentclass", "\\title{", "\\begin{abstract}", "\\author", "\\begin{document}"):
        assert front in original and front not in text


def test_bibliography_and_what_follows_are_removed_unless_the_appendix_is_kept():
    original = EMCEE.read_text()
    assert original.count("\\bibitem") == 34 and "\\appendix" in original
    text = cleaned(original)
    assert "\\bibitem" not in text and "thebibliography" not in text
    assert "\\section{Installation}" not in text  # the appendix after \appendix
    assert text.rstrip().endswith("\\project{emcee} makes use of the open-source Python \\project{numpy} package.")
    with_appendix = cleaned(original, keep_appendix=True)
    assert "\\bibitem" not in with_appendix and "thebibliography" not in with_appendix
    assert "\\section{Installation}" in with_appendix and "\\section{Online Documentation}" in with_appendix


def test_comments_are_removed_but_escaped_percent_signs_kept():
    paper = scipy_members()["paper.tex"].decode()
    assert paper.count("\\%") == 11 and "%%% Local Variables:" in paper
    stripped = strip_comments(paper)
    assert stripped.count("\\%") == 11
    # a verbatim block keeps its % as printed text; a commented-out listing (%\begin{lstlisting}) goes
    outside_verbatim = re.sub(r"\\begin\{verbatim\}[\s\S]*?\\end\{verbatim\}", "", stripped)
    assert "%cpdef int func_new" in paper and "cpdef" not in stripped
    assert not re.search(r"(?<!\\)%", outside_verbatim) and "etc.) % hanker -> Hankel" in stripped
    assert "and CSR matrices is now up to 35\\% faster,\n" in stripped  # "% (Figure~\ref{...})," was a comment
    assert strip_comments("a \\\\% comment\nb") == "a \\\\\nb"  # after a line break \\, % starts a comment
    verbatim = "\\begin{verbatim}\n% kept\n\\end{verbatim}\n\\begin{comment}\ngone\n\\end{comment}\n"
    assert strip_comments(verbatim) == "\\begin{verbatim}\n% kept\n\\end{verbatim}\n"


def test_unbalanced_definition_is_skipped_and_counted_without_a_traceback():
    original = DYNONET.read_text()
    broken = original.replace("\\begin{document}", "\\newcommand{\\broken}{never closed\n\\begin{document}", 1)
    assert find_macros(broken).skipped == {"unbalanced": 1}
    result = ArxivCleaner().process(Document(id="dynonet", text=broken, source="arxiv"))
    assert isinstance(result, Document)
    assert result.metadata["arxiv_clean"]["definitions_skipped"] == {"unbalanced": 1}
    assert result.text == ArxivCleaner().process(Document(id="d", text=original, source="arxiv")).text


def test_cyclic_and_self_growing_macros_are_left_alone():
    definitions = "\\def\\a{\\b x}\\def\\b{\\a y}\\def\\c{\\c}\\def\\d{\\a z}"
    definitions += "\\def\\e{\\f\\f}\\def\\f{\\g\\g}\\def\\g{xxxx}"
    text = definitions + "\\begin{document}\\section{S} \\a \\b \\c \\d \\e \\f"
    result = clean_latex(text, ArxivCleanConfig(max_macro_chars=10))
    assert result.text == "\\section{S} \\a \\b \\c \\d \\e xxxxxxxx\n"  # \d uses the cycle \a <-> \b
    assert result.definitions_skipped == {"cyclic": 4, "too_long": 1}


def test_papers_without_a_section_are_dropped_or_kept_by_option():
    body = re.sub(r"\\(?:sub)*section|\\paragraph", r"\\textbf", EMCEE.read_text())
    rejected = ArxivCleaner().process(Document(id="e", text=body, source="arxiv"))
    assert isinstance(rejected, Rejection) and rejected.reason == "arxiv_clean.no_section"
    kept = cleaned(body, keep_sectionless=True)
    assert kept.startswith("\\title{\\project{emcee}: The MCMC Hammer}") and "\\textbf{Introduction}" in kept
    empty = ArxivCleaner().process(Document(id="e", text="\\begin{document}\\section{A}\\bibliography{x}", source="a"))
    assert isinstance(empty, Document)
    nothing = ArxivCleaner(ArxivCleanConfig(keep_sectionless=True))
    result = nothing.process(Document(id="e", text="\\begin{document}\n% only a comment\n\\end{document}", source="a"))
    assert isinstance(result, Rejection) and result.reason == "arxiv_clean.empty"


def test_inputs_are_inlined_with_cycles_and_depth_guarded():
    files = {"a": "A \\input{b} \\input{a}", "b": "B \\include{c}", "c": "C % \\input{missing}\n\\input{nowhere}"}
    text, included, problems, missing = inline_inputs("\\input a", lambda n: (n, files[n]) if n in files else None)
    assert text == "A B C % \\input{missing}\n\\input{nowhere} \\input{a}"
    assert included == ["a", "b", "c"] and missing == ["nowhere"]
    assert problems == {"input_cycle": 1, "missing_input": 1}
    doubling = {str(i): f"\\input{{{i + 1}}}\\input{{{i + 1}}}" for i in range(6)} | {"6": "x" * 100}
    text, _, problems, _ = inline_inputs("\\input{0}", lambda n: (n, doubling[n]), max_chars=5000)
    assert set(problems) == {"input_too_large"} and 4000 < text.count("x") <= 5000  # 64 copies would be 6400
    deep = {str(i): f"{i} \\input{{{i + 1}}}" for i in range(20)}
    load = lambda n: (n, deep[n]) if n in deep else None  # noqa: E731
    text, included, problems, _ = inline_inputs("\\input{0}", load, max_depth=3)
    assert problems == {"input_too_deep": 1} and included == ["0", "1", "2"]


# --- the reader ---------------------------------------------------------------------------------------------


def test_scipy_tarball_is_one_paper_with_its_inputs_inlined():
    records = read(SCIPY, "scipy-1.0")
    assert not [r for r in records if isinstance(r, Skip | Repaired)]
    doc = only_document(records)
    assert doc.id == "scipy-1.0" and doc.source == "arxiv" and doc.url is None
    assert doc.metadata["main_file"] == "paper.tex" and doc.metadata["included_files"] == SCIPY_INPUTS
    assert CKDTREE_SENTENCE in doc.text and "\\input{ckdtree}" not in doc.text
    text = cleaned(doc.text)
    assert CKDTREE_SENTENCE in text and text.startswith("\\section*{Introduction}")
    assert "\\begin{abstract}" not in text and "Local Variables" not in text


@pytest.mark.parametrize("suffix", [".tgz", ".tar"])
def test_tgz_and_plain_tar_read_like_the_tar_gz(tmp_path, suffix):
    data = SCIPY.read_bytes() if suffix == ".tgz" else gzip.decompress(SCIPY.read_bytes())
    path = tmp_path / f"scipy{suffix}"
    path.write_bytes(data)
    assert only_document(read(path, "scipy-1.0")).text == only_document(read(SCIPY, "scipy-1.0")).text


def test_bulk_gz_single_tex_is_read_as_one_paper():
    doc = only_document(read(BULK, "1703.09710"))
    assert doc.text == EMCEE.read_text()
    assert doc.metadata["arxiv_id"] == "1703.09710" and doc.url == "https://arxiv.org/abs/1703.09710"


def test_plain_tex_reads_inputs_from_its_folder_and_counts_a_missing_one(tmp_path):
    for name, data in scipy_members().items():
        if name != "poly.tex":
            (tmp_path / name).write_bytes(data)
    records = read(tmp_path / "paper.tex")
    assert [r.reason for r in records if isinstance(r, Repaired)] == ["missing_input"]
    doc = only_document(records)
    assert doc.metadata["missing_inputs"] == ["poly"]
    assert doc.metadata["included_files"] == [n for n in SCIPY_INPUTS if n != "poly.tex"]
    assert CKDTREE_SENTENCE in doc.text and "\\input{poly}" in doc.text
    assert "\\input{ckdtree}" not in doc.text


def test_a_plain_tex_input_is_read_only_up_to_the_size_limit(tmp_path, monkeypatch):
    (tmp_path / "big.tex").write_text("x" * 5000)
    (tmp_path / "paper.tex").write_text("\\documentclass{article}\\begin{document}\\input{big}\\end{document}")
    sizes = []
    real_open = FileSystems.open
    monkeypatch.setattr(FileSystems, "open", lambda *a, **k: _SizeSpy(real_open(*a, **k), sizes))
    records = read(tmp_path / "paper.tex", max_document_bytes=1000)
    assert [r.reason for r in records if isinstance(r, Repaired)] == ["input_too_large"]
    assert "\\input{big}" in only_document(records).text and sizes == [1001]


def test_a_remote_paper_reads_its_inputs_beside_it_and_never_outside_its_folder(monkeypatch):
    files = {"gs://bucket/paper/sec.tex": b"Section text.", "gs://bucket/secret.tex": b"not the paper's"}
    opened = []

    def fake_open(path, **_):
        opened.append(path)
        if path not in files:
            raise OSError(path)
        return io.BytesIO(files[path])

    monkeypatch.setattr(FileSystems, "open", fake_open)
    tex = "\\documentclass{a}\\begin{document}\\input{sec} \\input{../secret} \\input{/etc/hostname}"
    remote = "gs://bucket/paper/ms.tex"
    doc = only_document(list(parse_stream(io.BytesIO(tex.encode()), remote, ReaderConfig(format="arxiv"), "ms")))
    assert "Section text." in doc.text and doc.metadata["included_files"] == ["sec.tex"]
    assert doc.metadata["missing_inputs"] == ["../secret", "/etc/hostname"]
    assert opened == ["gs://bucket/paper/sec", "gs://bucket/paper/sec.tex"]  # nothing outside the paper's folder


class _SizeSpy:
    """A file handle that notes how many bytes each read asks for (`read()`: -1)."""

    def __init__(self, handle, sizes):
        self.handle, self.sizes = handle, sizes

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def read(self, size=-1):
        self.sizes.append(size)
        return self.handle.read(size)


def test_what_is_not_a_paper_is_a_counted_skip(tmp_path):
    assert [r.reason for r in read(ARXIV / "dynonet-2006.02250" / "ms.bib")] == ["no_main_tex"]
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    assert [r.reason for r in read(empty)] == ["empty_archive"]
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(gzip.decompress(SCIPY.read_bytes())[:30000])
    assert [r.reason for r in read(truncated)] == ["corrupt_archive"]
    figures = tmp_path / "figures.tar"
    with tarfile.open(figures, "w") as archive:
        info = tarfile.TarInfo("fig.pdf")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"%PDF"))
    assert [r.reason for r in read(figures)] == ["no_main_tex"]


def test_a_damaged_member_header_or_a_corrupt_gzip_is_counted(tmp_path):
    """tarfile's stream mode ends an archive silently at a damaged header; gzip's CRC is only checked at its end."""
    whole = bytearray(gzip.decompress(SCIPY.read_bytes()))
    with tarfile.open(fileobj=io.BytesIO(bytes(whole))) as archive:
        last = [m.offset for m in archive][-1]
    whole[last : last + 100] = b"x" * 100  # its name: the header checksum fails, the members after it are unread
    (tmp_path / "damaged.tar").write_bytes(bytes(whole))
    assert [r.reason for r in read(tmp_path / "damaged.tar")] == ["corrupt_archive"]
    data = bytearray(SCIPY.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0x5A for b in data[middle : middle + 64])
    (tmp_path / "flipped.tar.gz").write_bytes(bytes(data))
    assert [r.reason for r in read(tmp_path / "flipped.tar.gz")] in (["corrupt_compression"], ["corrupt_archive"])


def test_input_cycle_in_a_tarball_is_counted_and_the_paper_kept(tmp_path):
    paper = EMCEE.read_bytes().replace(b"\\section{Introduction}", b"\\section{Introduction}\n\\input{sections/loop}")
    path = tmp_path / "cycle.tar"
    with tarfile.open(path, "w") as archive:
        for name, data in (("./paper.tex", paper), ("sections/loop.tex", b"loop text \\input{sections/loop.tex}")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    records = read(path)
    assert [r.reason for r in records if isinstance(r, Repaired)] == ["input_cycle"]
    doc = only_document(records)
    assert doc.metadata["main_file"] == "paper.tex" and doc.metadata["included_files"] == ["sections/loop.tex"]
    assert "\\section{Introduction}\nloop text \\input{sections/loop.tex}\n" in doc.text


def test_latin1_source_is_decoded_and_counted(tmp_path):
    path = tmp_path / "latin1.tex"
    path.write_bytes(EMCEE.read_text().replace("New York University", "Universit\u00e9 de New York").encode("latin-1"))
    records = read(path)
    assert [r.reason for r in records if isinstance(r, Repaired)] == ["latin1_tex"]
    assert "Universit\u00e9 de New York" in only_document(records).text


def test_main_file_choice_and_arxiv_ids():
    main = "\\documentclass{article}\\begin{document}x\\end{document}"
    assert choose_main({"old.tex": main * 3, "ms.tex": main, "fig.tex": "\\begin{tikzpicture}"}) == "ms.tex"
    assert choose_main({"a.tex": main, "b.tex": main * 2}) == "b.tex"
    assert choose_main({"a.tex": "% \\documentclass{x}\n\\begin{document}", "b.tex": "no"}) == "a.tex"
    assert choose_main({"fig.tex": "\\begin{tikzpicture}"}) is None
    assert arxiv_id("celerite-1703.09710/ms") == "1703.09710" and arxiv_id("2006.02250v3") == "2006.02250"
    assert arxiv_id("hep-th9901001") == "hep-th/9901001" and arxiv_id("scipy-1.0") is None


# --- end to end ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_prepare_recipe_end_to_end(tmp_path, cli, capsys):
    out = tmp_path / "out"
    assert cli("prepare", "--recipe", "llama-arxiv", ARXIV, "-o", out, "--keep-rejected", "-q") == 0
    counts = read_manifest(str(out))["counts"]
    assert counts["read"] == 6 and counts["balanced"]
    assert counts["kept"] == 5 and counts["dropped"] == {"exact_dedup.duplicate": 1}  # the bulk .gz is emcee
    assert counts["skipped"] == {"no_main_tex": 3}  # the two .bib files and the folder's README.md
    docs = {doc.id: doc for doc in iter_documents(str(out))}
    scipy = docs["scipy-1.0"]
    # \newcommand{\cmark}{\ding{51}}, the ticks of the paper's table, is expanded at its 41 uses
    assert CKDTREE_SENTENCE in scipy.text and scipy.metadata["arxiv_clean"]["macros_expanded"] == 41
    assert "\\cmark" not in scipy.text and scipy.text.count("\\ding{51}") == 41
    assert all(doc.source == "arxiv" and doc.text.startswith("\\section") for doc in docs.values())
    assert docs["dynonet-2006.02250/ms"].metadata["arxiv_id"] == "2006.02250"
    assert sorted(docs) == [
        "bulk-style/emcee-mcmc-hammer",  # kept by exact_dedup over emcee-mcmc-hammer/ms, the same paper
        "dnest4/ms",
        "dynonet-2006.02250/ms",
        "emcee-v3-joss/paper",
        "scipy-1.0",
    ]
    assert json.dumps([doc.text for doc in docs.values()]).count("\\bibitem") == 0
