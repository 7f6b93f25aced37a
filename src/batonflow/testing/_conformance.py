"""placeholder replaced below"""


class StoreConformance: ...
