"""``kit label TASK``: label a random sample of a task's test items in the terminal, or move labels in and out.

    kit label snips-intents --size 50            # draw (or extend) the sample, then label it here
    kit label snips-intents                      # go on where you stopped
    kit label snips-intents --undo               # take back your last label
    kit label snips-intents --export labels.csv  # label elsewhere, then --import labels.csv
    kit label snips-intents --status             # how far the labelling is
    kit label snips-intents --queue disagreements  # read the items the options answered differently
    kit label snips-intents --design stratified --size 40  # once the options answered: label where they disagree

Interactively each item shows its text and the numbered labels; answer with a number or a label's name,
``s`` to skip, ``u`` to undo your last label, ``q`` to stop (end of input stops too).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from kit.cli.common import whole
from kit.columns import Col
from kit.labels.book import DEFAULT_SEED, LABELLER_ENV, LabelBook, Queue, Source, default_who
from kit.labels.design import Design
from kit.tasks.ppi_compare import MIN_LABELS

QUIT, SKIP, UNDO = "q", "s", "u"


def cmd_label(args: argparse.Namespace) -> int:
    from kit.errors import ConfigError
    from kit.labels.files import export_labels, import_labels
    from kit.paths import default_store
    from kit.run.store import Store
    from kit.tasks import load_task

    if args.seed is not None and args.size is None:
        raise ConfigError("--seed is recorded when the sample is drawn", where="kit label",
                          fix="pass it with --size N (the first draw), or leave it out")
    if args.design is not None and args.size is None:
        raise ConfigError("--design says how a sample is drawn", where="kit label",
                          fix=f"pass it with --size N, e.g. kit label {args.task} --design {args.design} --size 40")
    task = load_task(args.task)
    who = args.who or default_who()
    with Store(args.store or default_store()) as store:
        book = LabelBook(store, task)
        if args.size is not None:
            _draw(book, Design(args.design) if args.design else None, args.size, seed=args.seed)
        if args.import_file:
            done = import_labels(book, Path(args.import_file), who=who, overwrite=not args.no_overwrite)
            replaced = "; ".join(f"replaced {n} labels given by {by}" for by, n in sorted(done.replaced.items()))
            print(f"imported {args.import_file}: {done.added} labels added, {done.unchanged} unchanged, "
                  f"{done.blank} rows without a label left out"
                  + (f"; {replaced}" if replaced else "")
                  + (f"; {done.kept} items labelled differently by someone else kept their label (--no-overwrite)"
                     if done.kept else "")
                  + (f"; {done.outside} lie outside the sample (kept, not used by the estimates)"
                     if done.outside else ""))
        if args.undo:
            undone = book.undo(who=who)
            print(f"undone: {_said(undone.label)} for {undone.item_id} (given {undone.at})" if undone
                  else f"{who} has no label on {task.name} to undo")
        if args.export_file:
            rows = export_labels(book, Path(args.export_file))
            print(f"exported {rows} rows to {args.export_file}")
        if args.import_file or args.undo or args.export_file or args.status:
            print(f"{task.name}: {book.progress()}")
            if args.status:
                _print_design(book)
            return 0
        queue = Queue(args.queue)
        if queue is Queue.SAMPLE and book.sample() is None:
            raise ConfigError(f"no sample of {task.name} is drawn yet", where=store.path,
                              fix=f"draw one: kit label {args.task} --size 50")
        label_interactively(book, who=who, read=sys.stdin, write=sys.stdout, queue=queue)
    return 0


def _draw(book: LabelBook, design: Design | None, size: int, *, seed: int | None) -> None:
    """Draw or extend the sample (``design`` None: the task's active design, random for a first draw) and say
    what happened — a smaller size than drawn changes nothing, and says so."""
    from kit.labels.design import draw_stratified

    task = book.task
    before = book.sample()
    design = design or (before.design if before is not None else Design.RANDOM)
    if design is Design.STRATIFIED:
        drawn = draw_stratified(book.store, task, size, seed=DEFAULT_SEED if seed is None else seed)
        if drawn.new and before is not None and before.design is Design.STRATIFIED:
            print(f"the stored answers changed since design {before.design_id} was drawn: drew design "
                  f"{drawn.design.id} with the new strata; the earlier design's labels stay valid and are combined")
        sample = book.sample()
    else:
        sample = book.draw(size, seed=seed)
    assert sample is not None
    if before is not None and before.design == sample.design and len(before.order) >= size:
        print(f"the sample already holds {len(before.order)} items, so --size {size} changes nothing (a sample "
              f"only grows: its first {size} items are labelled first)")
    kind = "" if sample.design is Design.RANDOM else f" ({sample.design})"
    print(f"sample{kind}: {len(sample.order)} of {len(task.test)} test items of {task.name} "
          f"(seed {sample.seed})")
    if design is Design.STRATIFIED:
        _print_design(book)


def _print_design(book: LabelBook) -> None:
    from kit.labels import sampled_labels

    labels = sampled_labels(book.store, book.task)
    if not labels.order:
        return
    for r in labels.stratum_table().to_dict("records") if labels.design != Design.RANDOM else ():
        print(f"  {r[Col.STRATUM]}: {r[Col.STRATUM_SIZE]} items, {r[Col.DRAWN]} drawn, {r[Col.N_LABELLED]} labels used")
    if not labels.measured:
        print(f"  {len(labels.gold)} labels used: below {MIN_LABELS}, no estimate is shown as a measurement yet")


def label_interactively(book: LabelBook, *, who: str, read: TextIO, write: TextIO,
                        queue: Queue = Queue.SAMPLE) -> None:
    """Present the next unlabelled item of ``queue`` until none is left, ``q`` or the end of ``read``."""
    def say(text: str = "") -> None:
        write.write(text + "\n")
        write.flush()

    labels = book.labels
    source = Source.CLI if queue is Queue.SAMPLE else Source.QUEUE
    say(f"{book.task.name}: {book.progress()} · labelling as {who} · a number or a label, "
        f"{SKIP} skip, {UNDO} undo, {QUIT} quit")
    if queue is Queue.DISAGREEMENTS:
        say("disagreements first: for reading — labels outside the random sample never enter the estimates")
    while True:
        item = book.next_item(queue)
        if item is None:
            progress = book.progress()
            say(f"every item of the sample is labelled or skipped: {progress}" if queue is Queue.SAMPLE
                else "no disagreement left unlabelled")
            if queue is Queue.SAMPLE and progress.skipped:
                say(f"skipped items stay unlabelled (`{UNDO}` or an import brings them back)")
            return
        position = book.position(item.id)
        where = f"{position} / {book.progress().size}" if position else "outside the sample"
        say(f"\n[{where}] {item.id}")
        say(item.text)
        say("  ".join(f"{n}) {label}" for n, label in enumerate(labels, start=1)))
        while True:
            write.write("> ")
            write.flush()
            line = read.readline()
            if not line:
                say("\nstopped at the end of input; run again to go on")
                return
            answer = line.strip()
            if answer == QUIT:
                say(f"stopped: {book.progress()}; run again to go on")
                return
            if answer == SKIP:
                book.skip(item.id, who=who, source=source)
                say(f"skipped {item.id}")
                break
            if answer == UNDO:
                undone = book.undo(who=who)
                say(f"undone: {_said(undone.label)} for {undone.item_id}" if undone else "nothing of yours to undo")
                break
            label = labels[int(answer) - 1] if answer.isdigit() and 1 <= int(answer) <= len(labels) else answer
            problem = book.label_problem(label)
            if problem:
                say(f"{problem}; type 1-{len(labels)}, a label, {SKIP}, {UNDO} or {QUIT}")
                continue
            book.give(item.id, label, who=who, source=source)
            answers = book.answers(item.id)
            shown = "; ".join(f"{arm} → {value}" for arm, value in answers.items())
            say(f"{item.id} → {label}" + (f"   (the options answered: {shown})" if shown else ""))
            break


def _said(label: str | None) -> str:
    return "the skip" if label is None else f"'{label}'"


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add ``kit label TASK`` to the kit's argument parser."""
    p = sub.add_parser("label", help="label a random sample of a task's test items (resumable, undoable)",
                       description="Label a uniformly random, seeded, recorded sample of a task's test items: "
                                   "in the terminal, or by exporting and importing a CSV/JSONL file.")
    p.add_argument("task", help="task name (see `kit tasks`) or path of a task YAML")
    p.add_argument("--store", help="SQLite store (default runs/kit.sqlite)")
    p.add_argument("--who", help=f"who labels (default ${LABELLER_ENV}, else your user name)")
    p.add_argument("--size", type=whole(1, meaning="items in the sample"),
                   help="draw the sample, or extend it to N items (earlier items keep their places)")
    p.add_argument("--seed", type=whole(0, meaning="the sample's random seed"),
                   help=f"seed of the first draw (recorded; default {DEFAULT_SEED}, the same in every store)")
    p.add_argument("--import", dest="import_file", metavar="FILE",
                   help="import labels from a CSV or JSONL file with columns id,label[,who]")
    p.add_argument("--export", dest="export_file", metavar="FILE",
                   help="export the sample and its labels to a CSV or JSONL file")
    p.add_argument("--design", choices=[str(d) for d in Design],
                   help="with --size: random (a uniformly random sample; the default) or stratified (strata from the "
                        "options' stored answers, labels spent where they disagree; needs the answers of 2+ options)")
    p.add_argument("--no-overwrite", action="store_true",
                   help="with --import: keep labels someone else gave that the file would change")
    p.add_argument("--undo", action="store_true", help="undo your last label (or skip) on the task")
    p.add_argument("--status", action="store_true", help="only say how far the labelling is")
    p.add_argument("--queue", choices=[str(q) for q in Queue], default=str(Queue.SAMPLE),
                   help="sample: the random sample, in order (default; what the estimates use); disagreements: "
                        "items the options answered differently, for reading (not used by the estimates)")
    p.set_defaults(func=cmd_label)
