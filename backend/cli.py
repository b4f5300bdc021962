"""``python -m backend``: build, inspect and demo datasets without a browser."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from backend import paths
from backend.executor import add_arguments as add_executor_arguments
from backend.executor import from_args
from backend.progress import bar as progress_bar
from backend.sources import FORMATS, SourceError


def _bar_progress(desc: str):
    """A progress bar over shards that also shows how many rows were read."""
    bar = progress_bar(desc, unit="shard")

    def update(done: int, total: int, rows: int) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix(rows=rows)
        bar.refresh()

    return bar, update


def _print_build(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.__dict__, indent=2))
        return
    print(
        f"built {result.name}: {result.rows} rows, {result.rejects} rejected "
        f"({result.shards} shards, {result.resumed_shards} resumed) in {result.seconds:.1f} s"
    )
    for reason, n in result.reasons.items():
        print(f"  rejected {n:>6}  {reason}")


def cmd_build(args: argparse.Namespace) -> int:
    from backend.ingest import build
    from backend.profiles import parse_mapping

    mapping = parse_mapping(args.map_column)
    joined = {"profile": args.profile, "mapping": mapping} if args.metadata else {}
    if joined:  # the profile and mapping are the metadata's, not the downloaded shards'
        args.profile, mapping = None, {}
    bar, update = _bar_progress(f"ingest {args.name}")
    try:
        result = build(
            args.name,
            args.source,
            args.format,
            workers=args.workers,
            progress=update,
            executor=from_args(args),
            profile=args.profile,
            mapping=mapping,
            keep_precision=args.keep_precision,
            embedding_model=args.embedding_model,
        )
    finally:
        bar.close()
    _print_build(result, args.json)
    if joined:
        from backend.metadata_join import join_metadata

        rec = join_metadata(args.name, args.metadata, **joined)
        print(f"joined {args.metadata} by {rec['joined_on']} ({rec['name'] or 'no known'} "
              f"profile): {rec['matched_rows']} of {rec['rows']} rows matched; "
              f"{rec['metadata_rows_not_downloaded']} metadata rows were not downloaded",
              file=sys.stderr if args.json else sys.stdout)  # fmt: skip
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from backend.demo import generate
    from backend.ingest import build

    name = args.name
    if args.if_missing and paths.store_path(name).is_file():
        print(f"dataset {name!r} is already built at {paths.dataset_dir(name)}")
        return 0
    source = paths.dataset_dir(name) / "source"
    truth = source / "ground_truth.json"
    current = json.loads(truth.read_text()) if truth.is_file() else {}
    if current.get("rows_requested") != args.rows or current.get("seed") != args.seed:
        bar = progress_bar("generate demo", unit="item")

        def gen_update(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            generate(source, rows=args.rows, seed=args.seed, progress=gen_update)
        finally:
            bar.close()
    executor = from_args(args)
    if executor:
        executor.connect()  # one Ray cluster for every step of the demo build
    bar, update = _bar_progress(f"ingest {name}")
    try:
        result = build(
            name,
            source,
            "webdataset",
            workers=args.workers,
            progress=update,
            executor=from_args(args),
        )
    finally:
        bar.close()
    _print_build(result, args.json)
    if not args.no_embed:
        from backend.democlip import for_demo

        args.clip_model, args.clip_pretrained, args.clip_checkpoint, note = for_demo(
            args.model, args.clip_model, args.clip_pretrained, args.clip_checkpoint
        )
        if note:
            print(f"note: {note}", file=sys.stderr)
        _run_embed_index(name, args)
        _run_map(name, args)
        from backend.safety.command import score_and_dedup

        score_and_dedup(name, from_args(args))
        from backend.concepts.run import analyse, mine_store

        summary = analyse(name, mine_store(name), executor=from_args(args))
        print(f"concepts: {summary.get('concepts', '?')} mined from the captions", file=sys.stderr)
    return 0


def _step_bars(step: str = ""):
    """One progress bar per named part of a step (embedding kinds, indexes), named
    ``"<step> <part>"`` so that a log says which step an ``img`` bar belongs to."""
    bars: dict = {}

    def update(part: str, done: int, total: int) -> None:
        bar = bars.get(part) or bars.setdefault(
            part, progress_bar(f"{step} {part}".strip(), total=total)
        )
        bar.total = total
        bar.n = done
        bar.refresh()

    return bars, update


def _run_embed_index(name: str, args: argparse.Namespace) -> None:
    out = sys.stderr if getattr(args, "json", False) else sys.stdout  # keep --json stdout clean
    from backend.embed import embed
    from backend.search import build_indexes

    bars, update = _step_bars("embed")
    try:
        rec = embed(
            name,
            mode=args.model,
            clip_model=args.clip_model,
            clip_pretrained=args.clip_pretrained,
            clip_checkpoint=args.clip_checkpoint,
            device=args.device,
            batch_size=args.batch_size,
            rebuild=getattr(args, "rebuild", False),
            progress=update,
            executor=from_args(args),
        )
    finally:
        for b in bars.values():
            b.close()
    if rec.get("clip_unavailable"):
        print(
            f"note: {rec['clip_unavailable']}\n      Using the packaged models instead: "
            "caption search by meaning and image-to-image similarity; no text-to-image.",
            file=sys.stderr,
        )
    for kind, info in rec["kinds"].items():
        print(
            f"embedded {kind}: {info.get('model')} (dim {info.get('dim')}, "
            f"{info.get('rows_per_s', '-')} rows/s)",
            file=out,
        )
    bars, update = _step_bars("index")
    try:
        built = build_indexes(name, progress=update, executor=from_args(args))
    finally:
        for b in bars.values():
            b.close()
    for kind, meta in built["faiss"].items():
        print(f"indexed {kind}: {meta.get('factory')} over {meta.get('n')} rows", file=out)
    print(f"keyword index: {built['keyword'].get('docs')} captions", file=out)


def cmd_embed(args: argparse.Namespace) -> int:
    _run_embed_index(args.name, args)
    return 0


def _run_map(name: str, args: argparse.Namespace) -> dict:
    """The map step with one progress bar per phase; a summary line (stderr under --json)."""
    from backend.map import build_map

    out = sys.stderr if getattr(args, "json", False) else sys.stdout
    bars, update = _step_bars("map")
    try:
        rec = build_map(
            name,
            vectors=getattr(args, "vectors", None),
            sample=getattr(args, "sample", None) or 200_000,
            clusters=getattr(args, "clusters", None),
            progress=update,
            executor=from_args(args),
        )
    finally:
        for b in bars.values():
            b.close()
    v = rec["vectors"]
    print(
        f"mapped {rec['mapped']} of {rec['n']} rows by {v['kind']} vectors ({v['model']}) with "
        f"{rec['method']}; {rec['k']} clusters; {rec['nan_rows']} rows without a usable vector; "
        f"{rec['seconds']:.1f} s",
        file=out,
    )
    if rec.get("method_note"):
        print(f"note: {rec['method_note']}", file=sys.stderr)
    return rec


def cmd_map(args: argparse.Namespace) -> int:
    rec = _run_map(args.name, args)
    if args.json:
        print(json.dumps(rec, indent=2, default=str))
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from backend.search import build_indexes

    bars, update = _step_bars("index")
    try:
        built = build_indexes(args.name, progress=update, executor=from_args(args))
    finally:
        for b in bars.values():
            b.close()
    for kind, meta in built["faiss"].items():
        print(f"indexed {kind}: {meta.get('factory')} over {meta.get('n')} rows")
    print(f"keyword index: {built['keyword'].get('docs')} captions")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from backend.search import Searcher

    s = Searcher(args.name)
    if args.text is not None:
        res = s.text(args.text, k=args.k)
    elif args.keywords is not None:
        res = s.keywords(args.keywords, k=args.k)
    elif args.hybrid is not None:
        res = s.hybrid(args.hybrid, k=args.k)
    elif args.image is not None:
        res = s.image(Path(args.image).read_bytes(), k=args.k)
    elif args.caption_row is not None:
        res = s.like_caption(args.caption_row, k=args.k)
    else:
        res = s.like_row(args.row, k=args.k)
    out = [
        {"row_id": h["row_id"], "score": round(h["score"], 4), "caption": h["caption"]}
        for h in res.hits
    ]
    if args.json:  # which vectors and model answered travel with the results
        print(json.dumps({"vectors": res.vectors, "model": res.model, "space": res.space,
                          "notes": res.notes, "results": out}, indent=2, ensure_ascii=False))
    else:
        for note in res.notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"{len(out)} results from {res.space} in {res.seconds * 1000:.0f} ms"
              + (f" (model: {res.model})" if res.model else ""))
        for h in out:
            print(f"{h['row_id']:>9}  {h['score']:.3f}  {h['caption']}")
    return 0


def cmd_embeddings(args: argparse.Namespace) -> int:
    from backend import embedding_sets

    if not paths.store_path(args.name).is_file():
        raise FileNotFoundError(f"no dataset {args.name!r}: run `python -m backend build`")
    if args.model:
        embedding_sets.name_model(args.name, args.model)
    if args.use:
        embedding_sets.use(args.name, args.use)
    sets = embedding_sets.summary(args.name)
    if args.json:
        print(json.dumps(sets, indent=2))
        return 0
    if not sets:
        print(f"{args.name}: no embeddings: run `python -m backend embed {args.name}`")
    for set_name, v in sets.items():
        mark = "*" if v["default"] else " "
        print(f"{mark} {set_name:<16} {v['kind']:<4} {v['dim']:>5}-d  {v['rows']:>9} rows  "
              f"{v['source']:<8} {v['dtype'] or '':<8} {v['model']}")
    if args.use or args.model:
        print(f"now rebuild what reads them: `python -m backend index {args.name}` and "
              f"`python -m backend map {args.name}`")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from backend.catalog import summary

    info = summary(args.name)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(f"{info['name']}: {info['rows']} rows, {info['rejects']} rejected")
        print(f"  source: {info.get('source')} ({info.get('format')})")
        if info.get("profile"):
            p = info["profile"]
            how = "forced" if p.get("forced") else "detected"
            print(f"  profile: {p.get('name') or 'none'} — {p.get('title')} ({how})")
        for col, sc in info.get("scores", {}).items():
            print(f"  score {col}: {sc['label']} [{sc['source']}; model {sc['model']}]")
        for set_name, v in info.get("embeddings", {}).items():
            print(f"  vectors {set_name}: {v['kind']} {v['dim']}-d, {v['model']} [{v['source']}]"
                  + (" (default)" if v.get("default") else ""))
        print(f"  steps:  {', '.join(info['steps']) or 'none'}")
        for reason, n in info.get("reasons", {}).items():
            print(f"  rejected {n:>6}  {reason}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from backend.catalog import summary

    names = paths.list_datasets()
    if args.json:
        print(json.dumps([summary(n) for n in names], indent=2, default=str))
    elif not names:
        print(f"no datasets under {paths.workspace()}: run `python -m backend demo`")
    for n in names if not args.json else []:
        s = summary(n)
        print(f"{n}\t{s['rows']} rows\t{s['rejects']} rejected\tsteps: {', '.join(s['steps'])}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from backend.synth import main as synth_main

    return synth_main([args.name, *args.rest])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m backend", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="ingest a source folder or file as dataset NAME")
    b.add_argument("name")
    b.add_argument("--source", required=True, type=Path)
    b.add_argument("--format", default="auto", choices=FORMATS)
    b.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    b.add_argument("--json", action="store_true", help="print the result as JSON")
    from backend.profiles import BY_NAME as PROFILE_NAMES

    b.add_argument("--profile", default=None, choices=sorted(PROFILE_NAMES),
                   help="the known pool the tables come from (default: detected from the "
                   "columns); a profile that does not fit is an error naming what is missing")
    b.add_argument("--map-column", action="append", default=None, metavar="CANONICAL=COLUMN",
                   help="map a column by hand, e.g. nsfw=my_nsfw_score, caption=alt (repeatable)")
    b.add_argument("--metadata", type=Path, default=None,
                   help="the pool's metadata parquet (file or folder) to join to downloaded "
                   "shards by uid (img2dataset output of DataComp …); --profile and "
                   "--map-column then apply to it")
    b.add_argument("--keep-precision", action="store_true",
                   help="keep shipped vectors in the precision given (default: float16)")
    b.add_argument("--embedding-model", default=None, metavar="MODEL",
                   help="the model of shipped vectors whose source does not say "
                   "(clip-retrieval folders), e.g. ViT-B-32/openai")
    add_executor_arguments(b)
    b.set_defaults(func=cmd_build)

    es = sub.add_parser("embeddings", help="the embedding sets of NAME; pick the default one")
    es.add_argument("name")
    es.add_argument("--use", metavar="SET", help="make a shipped set (l14_img, or b32 for both "
                    "towers) the default; then rerun index and map")
    es.add_argument("--model", metavar="MODEL", help="name the model of shipped vectors of "
                    "unknown model, e.g. ViT-B-32/openai")
    es.add_argument("--json", action="store_true")
    es.set_defaults(func=cmd_embeddings)

    d = sub.add_parser("demo", help="generate the offline demo dataset and build it")
    d.add_argument("--name", default="demo")
    d.add_argument("--rows", type=int, default=5000)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--workers", type=int, default=None)
    d.add_argument("--if-missing", action="store_true", help="do nothing if already built")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_demo)

    for sp in (d,):
        sp.add_argument(
            "--no-embed",
            action="store_true",
            help="stop after ingest (skip embed, index, map, scores and duplicates)",
        )
    e = sub.add_parser("embed", help="embed images and captions, then build the search indexes")
    e.add_argument("name")
    e.add_argument("--rebuild", action="store_true", help="re-embed with another model")
    e.set_defaults(func=cmd_embed)
    add_executor_arguments(e)
    add_executor_arguments(d)
    for sp in (d, e):
        sp.add_argument(
            "--model",
            default="auto",
            choices=("auto", "clip", "packaged"),
            help="auto: CLIP when its weights load, else the packaged models",
        )
        sp.add_argument("--clip-model", default=None, help="open_clip model (ViT-B-32)")
        sp.add_argument("--clip-pretrained", default=None, help="tag (laion2b_s34b_b79k)")
        sp.add_argument("--clip-checkpoint", default=None, help="local open_clip weights file")
        sp.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
        sp.add_argument("--batch-size", type=int, default=None)

    x = sub.add_parser("index", help="build the FAISS and keyword indexes of NAME")
    x.add_argument("name")
    add_executor_arguments(x)
    x.set_defaults(func=cmd_index)

    m = sub.add_parser("map", help="place NAME's rows on a 2-D map and cluster them")
    m.add_argument("name")
    m.add_argument(
        "--sample",
        type=int,
        default=200_000,
        help="fit UMAP on this many rows, place the rest by transform",
    )
    m.add_argument("--clusters", type=int, default=None, help="k (default: from the row count)")
    m.add_argument(
        "--vectors",
        choices=("image", "text"),
        default=None,
        help="which embeddings (default: CLIP image, else caption vectors)",
    )
    m.add_argument("--json", action="store_true")
    add_executor_arguments(m)
    m.set_defaults(func=cmd_map)

    s = sub.add_parser("search", help="search NAME; prints the best rows")
    s.add_argument("name")
    q = s.add_mutually_exclusive_group(required=True)
    q.add_argument("--text", help="semantic search (text→image with CLIP, else captions)")
    q.add_argument("--keywords", help="BM25 keyword search over captions")
    q.add_argument("--hybrid", help="keywords and meaning, fused by rank")
    q.add_argument("--image", help="path of an image to find look-alikes of")
    q.add_argument("--row", type=int, help="row id: more like this")
    q.add_argument("--caption-row", type=int, metavar="ROW",
                   help="row id: images like this row's caption (its text vector)")
    s.add_argument("-k", type=int, default=10)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_search)

    i = sub.add_parser("info", help="row, reject and step counts of dataset NAME")
    i.add_argument("name")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    ls = sub.add_parser("list", help="the datasets in the workspace")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    sy = sub.add_parser(
        "synth",
        help="write a synthetic 10^7-10^8-row dataset (parquet shards, no images) to test scale",
    )
    sy.add_argument("name")
    sy.add_argument(
        "rest",
        nargs=argparse.REMAINDER,
        help="--rows N [--shards S] [--root DIR] [--seed 0] [--no-concepts] [--overwrite]",
    )
    sy.set_defaults(func=cmd_synth)

    from backend.export.command import add_parser as add_export_parser

    add_export_parser(sub)
    from backend.subsets_cli import add_parser as add_subset_parser

    add_subset_parser(sub)
    from backend.safety.command import add_parser as add_safety_parser

    add_safety_parser(sub)
    from backend.concepts.command import add_parser as add_concepts_parser

    add_concepts_parser(sub)
    from backend.democlip.command import add_parser as add_democlip_parser

    add_democlip_parser(sub)
    from backend.count_cli import add_parser as add_count_parser

    add_count_parser(sub)
    from backend.relocate import add_parser as add_relocate_parser

    add_relocate_parser(sub)
    from backend.contamination.command import add_parser as add_contamination_parser

    add_contamination_parser(sub)
    from backend.mixture_cli import add_parser as add_mixture_parser

    add_mixture_parser(sub)
    from backend.impact_cli import add_parser as add_impact_parser

    add_impact_parser(sub)
    from backend.audits_cli import add_parser as add_audits_parser

    add_audits_parser(sub)  # linkrot, blocklist
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from backend.bounded import trust_local_user
    from backend.index import VectorIndexError

    try:
        with trust_local_user(args.command != "count"):  # count: the UI's box, UI's limits
            return args.func(args)
    except (
        SourceError, paths.BadName, FileNotFoundError, ValueError, RuntimeError, VectorIndexError
    ) as e:  # a missing step or bad input: one line naming what to run, never a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
