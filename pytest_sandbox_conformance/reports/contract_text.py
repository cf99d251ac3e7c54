"""The contract's requirements (title and text), generated from docs/contract.md by
``python -m pytest_sandbox_conformance.reports.contract docs/contract.md``: do not
edit; tests/test_reports.py checks that it is current."""

REQUIREMENTS = {
    'OWN-1': {
        'title': 'Authority comes from create',
        'text': "When the driver creates a sandbox's container, it takes the container ID the engine returns as the\nsandbox's authoritative instance and puts a newly generated generation label on the container. It\nMUST persist both durably **before** it reports that container as the sandbox's instance. If the\nengine returns an empty ID, the create is an error; it MUST NOT leave behind a sandbox without an\nowner.",
    },
    'OWN-2': {
        'title': 'Labels only help to find containers',
        'text': "Identity labels are for discovery, never proof. A container whose identity labels match but whose\nID is not the authority MUST NOT drive the sandbox's snapshot, whether its labels were copied from\nthe real instance or set by hand (`docker run --label ...`).",
    },
    'OWN-3': {
        'title': 'Duplicates next to a present authority',
        'text': 'While A is present and not in a handoff shape (OWN-4), the snapshot MUST come from A, no matter\nwhich other matching containers exist, what state they are in, or in which order the engine lists\nthem. The driver emits one Warning `ContainerIdentityConflict` that names the other candidates.',
    },
    'OWN-4': {
        'title': 'Overlapping handoff',
        'text': 'The handoff shape: A is `exited` and named `<canonical>-nemoclaw-gpu-backup-<digits>`; exactly one\nother candidate B exists; B has the canonical name, a non-terminal state (`created`, `running` or\n`restarting`) and the generation recorded for A; and no other container matches.\n\n- At the **first** observation of this shape the driver durably records a replacement intent\n  `{incumbent: A, replacement: B, backup name}`, reports `Ready=False` with reason\n  `ContainerReplacementPending`, and emits a Warning `SandboxReplacementIntentRecorded`.\n- At the **next** observation that still shows exactly this shape, it adopts B: A joins the set of\n  retired instances, the snapshot now comes from B, and it emits a Warning\n  `SandboxInstanceReplaced`.\n\nThe outcome MUST NOT depend on the order in which the engine lists A and B.',
    },
    'OWN-5': {
        'title': 'Handoff across a gap',
        'text': 'When A is absent and there is exactly one candidate, and it has the canonical name, a non-terminal\nstate and the recorded generation, the driver records an intent (without an incumbent) at the\nfirst observation and adopts the candidate at the next consistent observation, exactly as in OWN-4.',
    },
    'OWN-6': {
        'title': 'Missing instance',
        'text': "When A is absent and there are no candidates at all, the snapshot keeps A's ID and reports\n`Ready=False` with reason `ContainerInstanceMissing`, with a Warning of the same reason. The driver\nMUST NOT emit Deleted and MUST keep tracking the sandbox.",
    },
    'OWN-7': {
        'title': 'Fail closed',
        'text': "The driver adopts nothing, and reports a conflict snapshot (`Ready=False` with a specific reason)\ntogether with one Warning, when:\n\n- a candidate's generation label is missing or wrong;\n- there is more than one candidate;\n- the replacement is in a terminal state (`exited`, `dead`, `paused` or `removing`);\n- the sandbox's record has no generation (it was created by an older driver);\n- there is no authoritative ID at all: reason `ContainerOwnershipUnresolved`.\n\nIf the incumbent has the handoff shape but its successor is not acceptable, the reason is\n`ContainerReplacementPending`; every other conflict uses `ContainerIdentityConflict`.",
    },
    'OWN-8': {
        'title': 'An interrupted or churned intent is dropped',
        'text': 'If the observation after an intent does not match the intent exactly (the replacement was swapped\nfor a different container, a third candidate appeared, the replacement disappeared, or the\nincumbent changed), the driver clears the intent, emits a Warning\n`SandboxReplacementIntentInvalidated`, and adopts nothing. Adoption then needs a fresh pair of\nconsistent observations, so a sequence of containers that never settles is never adopted.',
    },
    'OWN-9': {
        'title': 'Restarts are invisible',
        'text': "A driver restarted at any moment, including between recording an intent and adopting, restores\nthe authority, generation, retired set and intent from its durable journal, and ends in the same\nstate as a driver that never restarted. If the journal is one replacement behind or ahead of the\n`instance_id` the gateway stored, the journal wins, provided the stored ID is the journal's\nauthority or one of its retired IDs.",
    },
    'OWN-10': {
        'title': 'Deleted only when asked',
        'text': 'The driver emits Deleted for a sandbox only because of an explicit delete request, never because\nan observation did not find its container.',
    },
    'OWN-11': {
        'title': 'Durable state survives',
        'text': 'Through every observation that does not adopt (pending, missing, conflict), the sandbox keeps its\ndurable state: spec, metadata labels, policy version and settings.',
    },
    'OWN-12': {
        'title': 'No promotion while unresolved',
        'text': 'While the snapshot carries a pending or conflict reason, nothing may promote the sandbox to Ready,\nnot even a connected in-sandbox supervisor.',
    },
    'OWN-13': {
        'title': 'Rollback to a former instance',
        'text': 'When A is absent and exactly one candidate is a **retired** instance of this sandbox, under the\ncanonical name and in a non-terminal state or exited, and every other candidate is a retired\ninstance that is exited under a backup name, that retired instance becomes authoritative again\n(Warning `SandboxInstanceRollback`). A container that was never this sandbox\'s instance can never\nbe rolled back to. (The source contract says "in a non-terminal state"; this project also rolls\nback to an exited one: "Where this project decides", 8c.)',
    },
    'OWN-14': {
        'title': 'Delete removes every exact match',
        'text': "An explicit delete stops and removes every container whose namespace, sandbox-id and sandbox-name\nlabels match exactly (backups and duplicates included, nothing else), then forgets the sandbox's\njournal. It reports `deleted=true` if and only if it removed something, and deleting again is\nharmless. A delete that races a create leaves neither a container nor a journal behind.",
    },
    'OWN-15': {
        'title': 'The journal',
        'text': "The driver keeps one journal per sandbox. It is:\n\n- versioned;\n- owner-only: file mode 0600, folder mode 0700;\n- written atomically: a temporary file, fsync, rename over the journal, fsync of the folder;\n- checked when loaded: version, sandbox id, name and namespace.\n\nEvery change to the journal is persisted before the driver's in-memory state changes. A corrupt,\nforeign or unreadable journal is never trusted silently: it fails closed\n(`ContainerOwnershipUnresolved`). A failed write is reported as `ContainerOwnershipPersistFailed`,\nand nothing is adopted.",
    },
    'OWN-16': {
        'title': 'Crash consistency',
        'text': 'A crash at any point during a journal write leaves either the old journal or the new one, never a\ntorn one, and the restarted driver resolves consistently from whichever it finds.',
    },
    'OWN-17': {
        'title': 'One warning per condition',
        'text': 'The driver emits one Warning per distinct condition (identified by a key such as\n`replacement-intent:A:B`), not one per observation. If a condition clears and later arises again,\nit is reported again. A notice raised before anyone is watching is delivered to the first watcher.',
    },
    'OWN-18': {
        'title': 'Unowned containers are ignored',
        'text': "Containers that carry the driver's labels but a sandbox id the driver does not track never become\nsandboxes. After start-up restoration they are reported once (`UnownedSandboxContainersIgnored`).",
    },
    'OWN-19': {
        'title': 'A GPU does not make a container the owner',
        'text': 'A replacement carrying GPU device requests (Docker `DeviceRequests` with capabilities `[["gpu"]]`,\nCDI device IDs such as `nvidia.com/gpu=all`, or `--runtime nvidia` with `NVIDIA_VISIBLE_DEVICES`)\nis adopted or refused by exactly the same rules as any other container. Once it is adopted, the\nsandbox\'s instance is the container that actually has the GPU, with its device requests in effect.',
    },
    'OWN-20': {
        'title': 'Timing does not matter',
        'text': 'For one story of outside actions, every schedule of observations (where the polls fall, how the\nengine orders its list, where a restart happens) that ends with the same containers present\nconverges, after enough quiet observations, to the same sandbox state. No schedule may ever pass\nthrough a forbidden state:\n\n- a Deleted event (nobody asked for a delete);\n- lost durable state;\n- a snapshot driven by a container that is not authoritative;\n- promotion to Ready while unresolved.',
    },
}
