"""validate_destination: the guide's checklist plus the traps it misses, one finding per check."""

from bizon_forge.validators.report import ValidationResult


def validate_destination(ws, name, level="fast", fix=False, verbose=False, progress=None) -> ValidationResult:
    raise NotImplementedError("validators are being written")
