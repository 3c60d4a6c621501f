"""Pure evaluation of binary classifiers: bootstrap intervals, paired tests, calibration, business value,
gains, slices, robustness and permutation importance.

Everything here takes plain arrays or frames and returns frozen dataclasses of built-in Python types,
so results can be logged with ``dataclasses.asdict`` + ``json.dumps`` by whichever flow calls it.
No orchestration or tracking library is imported: these functions are the pure core that tasks wrap.

Modules, one concept each (import from them; this package re-exports nothing, so the statistics load
without torch or matplotlib): ``bootstrap`` (intervals and the paired AUC test), ``ranking`` (the
count-weighted AUC/AP kernel they share with the slices), ``checks`` (input validation), ``calibration``,
``business`` (profit and the threshold), ``gains`` (gains and lift), ``diagnostics`` (slices, robustness,
permutation importance), ``plots``, ``config`` and ``evaluate`` (``evaluate_model`` and the
``EvaluationReport`` it returns for a trained model).
"""
