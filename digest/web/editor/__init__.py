"""The editors' desk under ``/editor/``: lists, editions and drafts, previews, the paywall
check, test sends, approval and the archive. See :mod:`digest.web.editor.auth` for who may use
it and :mod:`digest.web.editor.pages` for the pages."""

from digest.web.editor.pages import routes

__all__ = ["routes"]
