"""Published reference numbers (one YAML per paper or project), installed as the package data of
``sslbench_references`` so ``compare --reference`` finds them outside a checkout."""
