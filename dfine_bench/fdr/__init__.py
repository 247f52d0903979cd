"""D-FINE's FDR box head and GO-LSD loss as parts any DETR can use (the paper's Table 2).

* ``head``: FDR settings, W(n), the box head and the family-agnostic decoding loop;
* ``loss``: FGL and DDF added to a baseline's transformers criterion;
* ``rtdetr`` / ``deformable``: the baselines' transformers models with the head swapped in
  (registered as ``rtdetr_r18+fdr``, ``rtdetr_r50+fdr``, ``deformable_detr+fdr`` by
  ``dfine_bench.adapters.fdr_variants``);
* the small-scale accuracy ablation (``dfine-bench ablate``) trains these models, so it lives a
  layer up, in ``dfine_bench.training.ablation`` (with ``ablation_stats`` and ``ablation_report``).

Nothing here is imported by ``import dfine_bench``: torch and transformers load on use.
"""
