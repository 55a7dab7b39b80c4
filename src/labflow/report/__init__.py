"""The offline report: ``labflow report`` writes ``report/index.html`` and a page per lab."""
