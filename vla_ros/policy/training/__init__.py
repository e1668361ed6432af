"""Training a policy on recorded demonstrations: bags -> (observation, action-chunk) samples -> a trained model.

Lives under `policy/` because it produces policies (the replay package only evaluates them):
`dataset` turns bags into training samples with the same observation code the nodes run, and
`train` holds the time-budgeted loop the demo uses. The flow-matching model's own step-count loop
with freezing options is `vla_ros.policy.flow_matching.train`.
"""
