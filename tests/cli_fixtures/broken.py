"""A workflow file that cannot be imported (for the error-message tests)."""

import batonflow as bf

RATIO = 1 / 0


@bf.workflow
async def flow(ctx: bf.Context) -> None:
    return None
