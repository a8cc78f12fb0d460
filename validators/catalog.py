"""Every check, with its stable id: the checklist an agent reads is generated from here."""


def checklist_markdown() -> str:
    return "# Checklist\n"
