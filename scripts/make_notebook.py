"""Write a stage notebook from a list of cells (used once per notebook; notebooks are then edited in Jupyter).

    python scripts/make_notebook.py OUT.ipynb < cells.txt

Cells in the input are separated by lines ``# %% [markdown]``, ``# %% [code]`` or
``# %% [parameters]`` (a code cell tagged ``parameters``). In markdown cells a leading ``# `` on a
line is removed (the jupytext "percent" convention: ``# ## Title`` becomes ``## Title``). Outputs
are empty.
"""

import sys

import nbformat


def build(text: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    kind, buf = None, []

    def flush():
        if kind is None:
            return
        src = "\n".join(buf).strip("\n")
        if kind == "markdown":
            src = "\n".join("" if ln == "#" else ln[2:] if ln.startswith("# ") else ln for ln in src.split("\n"))
            nb.cells.append(nbformat.v4.new_markdown_cell(src))
        else:
            cell = nbformat.v4.new_code_cell(src)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)

    for line in text.splitlines():
        if line.startswith("# %% ["):
            flush()
            kind, buf = line[len("# %% ["):-1], []
        else:
            buf.append(line)
    flush()
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i:02d}"
    return nb


if __name__ == "__main__":
    nbformat.write(build(sys.stdin.read()), sys.argv[1])
