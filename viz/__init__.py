"""Views of a run's records: charts (`gantt`, `utilization`, `overhead`), the terminal report (`terminal`),
the Perfetto trace (`trace`), `bench simulate`/`replay` tables (`whatif`); `style`, `fmt` and `words` are what
they share. Each turns data into an artefact (a Figure, a rich renderable, a dict); only `save` writes files,
nothing prints, and nothing imports torch, diffusers or the runners.
"""
