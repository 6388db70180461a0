"""The ``imadvise`` demo step (placeholder while the task is built)."""


def run_demo(ctx):
    ctx.echo("imadvise: demo pending")
