"""The click front end of seqbench (installed as ``seqbench.cli``)."""
