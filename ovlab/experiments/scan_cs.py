"""``python -m ovlab.experiments.scan_cs <source>``: the DVC stage ``scan_cs_finetune@<source>``.

Fine-tunes the ``scan`` section's CLIP on masked crops with Contextual Shift for one substitute
source (SCAN §3.2; :func:`ovlab.scan.cs_finetune.run_cs_finetune`) and writes
``<scan.cs_finetune.output>/<source>/clip.pt`` (+ ``prompts.pt`` for ``learnable``) and
``metrics.json``; the SCAN grid cells whose CS uses that source load those weights as their
mask-classifying CLIP (:func:`ovlab.config.scan_cs.finetuned_mask_clip`).
"""

from __future__ import annotations

import argparse
import sys

from ovlab.config import ParamsError, load_params


def main(argv: list[str] | None = None) -> int:
    """Run one fine-tuning; exit 1 with one clear message on bad params, data or weights."""
    from ovlab.clip.loading import WeightsNotFoundError
    from ovlab.data.errors import CorruptFileError, DatasetNotFoundError
    from ovlab.scan.cs_finetune import run_cs_finetune

    p = argparse.ArgumentParser(prog="python -m ovlab.experiments.scan_cs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="CS substitute source, one of scan.cs_finetune.sources (SCAN: cls)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        stage = load_params(args.params).stage("scan")
        res = run_cs_finetune(stage, args.source, progress=not args.quiet)
    except (ParamsError, WeightsNotFoundError, DatasetNotFoundError, CorruptFileError, KeyError, ValueError,
            FileNotFoundError, TypeError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        print(f"scan_cs: error: {msg}", file=sys.stderr)
        return 1
    m = res.metrics
    print(f"scan_cs: {args.source}: {m['iterations']} iterations on {m['pairs']} pairs, final loss "
          f"{m['final_loss']:.4f}; wrote {res.weights}" + (f" and {res.prompts}" if res.prompts else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
