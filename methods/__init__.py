"""Built-in method plugins (installed as ``sslbench_methods``), one file each."""

BUILTINS = {
    "simclr": "sslbench_methods.simclr:SimCLR",
}
