"""SpamAssassin, twinned: the gateway's spam filter stage (see ``stage.py``).

Modules: ``conf`` (config parser), ``perlre`` (Perl regex translation),
``meta`` (meta expressions), ``message`` (message views), ``rules`` (rule
compilation and evaluation), ``evals`` (eval tests), ``bayes``, ``awl``,
``report``, ``stage`` and ``commands`` (the CLI's library functions).
"""
