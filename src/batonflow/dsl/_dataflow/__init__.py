"""The data-flow report: which services, models and people a document sends which fields to.

``walk`` follows the tasks, ``paths`` the fields, ``calls`` what each call sends, ``meta`` the
governance a document declares, ``report`` the result and ``record`` the Art. 30 rendering.
"""
