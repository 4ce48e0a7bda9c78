"""Built-in method plugins (installed as ``sslbench_methods``), one file each."""

BUILTINS = {
    "simclr": "sslbench_methods.simclr:SimCLR",
    "moco": "sslbench_methods.moco:MoCo",
    "instdisc": "sslbench_methods.instdisc:InstDisc",
    "cmc": "sslbench_methods.cmc:CMC",
    "pirl": "sslbench_methods.pirl:PIRL",
    "deepcluster": "sslbench_methods.deepcluster:DeepCluster",
    "la": "sslbench_methods.local_aggregation:LocalAggregation",
    "baseline": "sslbench_methods.floors:Floor",
    "dgi": "sslbench_methods.dgi:DGI",
    "grace": "sslbench_methods.grace:GRACE",
    "scl": "sslbench_methods.scl:SCL",
    "simcse": "sslbench_methods.simcse:SimCSE",
    "cpc": "sslbench_methods.cpc:CPC",
    "gcc": "sslbench_methods.gcc:GCC",
    "amdim": "sslbench_methods.amdim:AMDIM",
    "byol": "sslbench_methods.byol:BYOL",
    "simsiam": "sslbench_methods.simsiam:SimSiam",
    "swav": "sslbench_methods.swav:SwAV",
    "barlow_twins": "sslbench_methods.barlow_twins:BarlowTwins",
    "vicreg": "sslbench_methods.vicreg:VICReg",
}
