"""The kernel that task families, algorithms and networks import: typed configuration (config), the
registries and the family / learner contracts (registry, family, learner), losses and metrics, the shared
gradient-based adaptation and evaluation, events and render payloads, optimisers, seeding, statistics,
errors and safe file storage.  It imports no service (:mod:`workbench.services`) and no Qt.
"""
