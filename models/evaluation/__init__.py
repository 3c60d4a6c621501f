"""Pure evaluation of binary classifiers: bootstrap intervals, paired tests, calibration, slices,
robustness and permutation importance.

Everything here takes plain arrays or frames and returns frozen dataclasses of built-in Python types,
so results can be logged with ``dataclasses.asdict`` + ``json.dumps`` by whichever flow calls it.
No orchestration or tracking library is imported on purpose: these functions are the pure core that
tasks wrap.

Modules, one concept each: ``bootstrap`` (intervals and the paired AUC test), ``ranking`` (the
count-weighted AUC/AP kernel they share with the slices), ``calibration``, ``business`` (profit),
``diagnostics`` (slices, robustness, permutation importance) and ``report`` (``evaluate_model`` and
the ``EvaluationReport`` it returns for a trained model).
"""
