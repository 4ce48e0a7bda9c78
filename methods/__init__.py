"""Built-in method plugins (installed as ``sslbench_methods``), one file each."""

BUILTINS = {
    "simclr": "sslbench_methods.simclr:SimCLR",
    "moco": "sslbench_methods.moco:MoCo",
    "instdisc": "sslbench_methods.instdisc:InstDisc",
    "baseline": "sslbench_methods.floors:Floor",
    "dgi": "sslbench_methods.dgi:DGI",
    "grace": "sslbench_methods.grace:GRACE",
    "scl": "sslbench_methods.scl:SCL",
    "simcse": "sslbench_methods.simcse:SimCSE",
    "cpc": "sslbench_methods.cpc:CPC",
}
