"""Views of a run: each reads one `RunReport` (`bench.analysis.report.build_report`) and makes an artefact,
recomputing nothing the report holds: charts (`gantt`, `utilization`, `overhead`; `lanes` is the panel set-up
of the first two), the terminal report (`terminal`), the Perfetto trace (`trace`). `save` writes them, the
only module that writes files; `whatif` tables `bench simulate`/`replay`; `style`, `fmt`, `words` are shared.
Nothing prints, and nothing imports torch, diffusers or the runners.
"""
