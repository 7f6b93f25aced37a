Feature: What the CTK leaves out, in the CTK's own vocabulary
  As the batonflow runtime
  I want waits, events, retries, timeouts, data flow and sub-flows to behave as the spec says
  So that a workflow written for any conforming runtime runs the same here, durably

  Scenario: A wait parks the run until its time has come
    Given a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: wait, version: '1.0.0' }
    do:
      - pause:
          wait: { minutes: 5 }
      - done:
          set: { slept: true }
    """
    When the workflow is started
    Then the workflow should be waiting
    When 299 seconds pass
    Then the workflow should be waiting
    When 1 seconds pass
    Then the workflow should complete with output:
    """yaml
    slept: true
    """

  Scenario: Listen to one event, correlated with the run's data
    Given a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: listen-one, version: '1.0.0' }
    do:
      - awaitPayment:
          listen:
            to:
              one:
                with: { type: com.shop.payment.received }
                correlate:
                  order: { from: .data.order, expect: '${ .order }' }
    """
    And given the workflow input is:
    """yaml
    order: A-1
    """
    When the workflow is started
    And the event is published:
    """yaml
    { id: '1', source: shop, type: com.shop.payment.received, data: { order: B-2, amount: 5 } }
    """
    Then the workflow should be waiting
    When the event is published:
    """yaml
    { id: '2', source: shop, type: com.shop.payment.received, data: { order: A-1, amount: 30 } }
    """
    Then the workflow should complete with output:
    """yaml
    [ { order: A-1, amount: 30 } ]
    """

  Scenario: Listen to any event until a condition holds, reading envelopes
    Given a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: listen-until, version: '1.0.0' }
    do:
      - collect:
          listen:
            to:
              any:
                - with: { type: com.sensor.reading }
              until: '${ length >= 2 }'
            read: envelope
          output:
            as: '${ map(.data.value) }'
    """
    When the workflow is started
    And the event is published:
    """yaml
    { id: a, source: s, type: com.sensor.reading, data: { value: 3 } }
    """
    And the event is published:
    """yaml
    { id: b, source: s, type: com.other, data: { value: 99 } }
    """
    And the event is published:
    """yaml
    { id: c, source: s, type: com.sensor.reading, data: { value: 4 } }
    """
    Then the workflow should complete with output:
    """yaml
    [ 3, 4 ]
    """

  Scenario: Listen to all events, in any order, filtering on their data
    Given a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: listen-all, version: '1.0.0' }
    do:
      - callDoctor:
          listen:
            to:
              all:
                - with: { type: vitals.temperature, data: '${ .temperature > 38 }' }
                - with: { type: vitals.bpm, data: '${ .bpm < 60 or .bpm > 100 }' }
    """
    When the workflow is started
    And the event is published:
    """yaml
    { id: '1', source: ward, type: vitals.bpm, data: { bpm: 120 } }
    """
    And the event is published:
    """yaml
    { id: '2', source: ward, type: vitals.temperature, data: { temperature: 37 } }
    """
    Then the workflow should be waiting
    When the event is published:
    """yaml
    { id: '3', source: ward, type: vitals.temperature, data: { temperature: 39.5 } }
    """
    Then the workflow should complete with output:
    """yaml
    [ { bpm: 120 }, { temperature: 39.5 } ]
    """

  Scenario: A listen that times out faults with the timeout error
    Given a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: listen-timeout, version: '1.0.0' }
    do:
      - awaitReply:
          listen:
            to:
              one:
                with: { type: com.reply }
          timeout:
            after: { hours: 1 }
    """
    When the workflow is started
    And 3600 seconds pass
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
    status: 408
    instance: /do/0/awaitReply
    """

  Scenario: Retries back off durably and the task finally succeeds
    Given a function 'flakyCrm' that fails 2 times before returning:
    """yaml
    logged: true
    """
    And a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: retry, version: '1.0.0' }
    do:
      - logEnquiry:
          try:
            - callCrm:
                call: flakyCrm
          catch:
            errors:
              with: { type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime }
            retry:
              delay: { seconds: 10 }
              backoff: { exponential: {} }
              limit: { attempt: { count: 3 } }
    """
    When the workflow is started
    Then the workflow should be waiting
    When 10 seconds pass
    Then the workflow should be waiting
    When 20 seconds pass
    Then the workflow should complete with output:
    """yaml
    logged: true
    """
    And callCrm should have been tried 3 times

  Scenario: Retries used up fault the task with the last error, and resume tries it again
    Given a function 'downCrm' that fails 3 times before returning:
    """yaml
    logged: true
    """
    And a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: retries-used-up, version: '1.0.0' }
    do:
      - logEnquiry:
          try:
            - callCrm:
                call: downCrm
          catch:
            errors:
              with: { type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime }
            retry:
              delay: { seconds: 10 }
              limit: { attempt: { count: 2 } }
      - confirm:
          set: { logged: '${ .logged }', confirmed: true }
    """
    When the workflow is started
    And 10 seconds pass
    And 10 seconds pass
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime
    status: 500
    instance: /do/0/logEnquiry/try/0/callCrm
    detail: 'ConnectionError: downCrm is unavailable (call 3)'
    """
    And confirm should not have run
    And the function 'downCrm' should have been called 3 times
    When the workflow is resumed
    Then the workflow should complete with output:
    """yaml
    logged: true
    confirmed: true
    """
    And the function 'downCrm' should have been called 4 times

  Scenario: Once the retries are used up, catch.do handles the error and the flow goes on
    Given a function 'downCrm' that fails 9 times before returning:
    """yaml
    logged: true
    """
    And a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: retries-then-do, version: '1.0.0' }
    do:
      - logEnquiry:
          try:
            - callCrm:
                call: downCrm
          catch:
            as: failure
            retry:
              delay: { seconds: 10 }
              limit: { attempt: { count: 1 } }
            do:
              - queueForLater:
                  set: { queued: true, reason: '${ $failure.detail }' }
      - confirm:
          set: { queued: '${ .queued }', reason: '${ .reason }' }
    """
    When the workflow is started
    And 10 seconds pass
    Then the workflow should complete with output:
    """yaml
    queued: true
    reason: 'ConnectionError: downCrm is unavailable (call 2)'
    """
    And the function 'downCrm' should have been called 2 times

  Scenario: catch.then sends the error path to another task
    Given a function 'downCrm' that fails 9 times before returning:
    """yaml
    logged: true
    """
    And a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: catch-then, version: '1.0.0' }
    do:
      - logEnquiry:
          try:
            - callCrm:
                call: downCrm
          catch:
            retry:
              limit: { attempt: { count: 1 } }
            then: escalate
      - confirm:
          set: { confirmed: true }
          then: end
      - escalate:
          set: { escalated: true }
    """
    When the workflow is started
    Then the workflow should complete with output:
    """yaml
    escalated: true
    """
    And confirm should not have run

  Scenario: A task timeout interrupts a call that hangs
    Given a function 'hangs' that never returns
    And a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: task-timeout, version: '1.0.0' }
    do:
      - slowCall:
          call: hangs
          timeout:
            after: { seconds: 30 }
    """
    When the workflow is started
    And 30 seconds pass
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
    status: 408
    instance: /do/0/slowCall
    """

  Scenario: Export writes the context that later tasks read
    Given a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: export, version: '1.0.0' }
    do:
      - remember:
          set: { name: '${ .name }' }
          export:
            as: '${ { who: .name } }'
      - forget:
          set: { unrelated: true }
      - greet:
          set: { greeting: '${ "Hello \($context.who)" }' }
    """
    And given the workflow input is:
    """yaml
    name: Ann
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    greeting: Hello Ann
    """

  Scenario: A task whose condition is false is skipped and passes its input on
    Given a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: if, version: '1.0.0' }
    do:
      - onlyForVip:
          if: '${ .vip }'
          set: { discount: 10 }
      - keep:
          set: '${ . + { checked: true } }'
    """
    And given the workflow input is:
    """yaml
    vip: false
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    vip: false
    checked: true
    """
    And keep should run last

  Scenario: For with while stops as soon as the condition fails
    Given a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: for-while, version: '1.0.0' }
    do:
      - addUp:
          for: { each: n, in: .numbers }
          while: '${ .total < 10 }'
          do:
            - add:
                set: { total: '${ .total + $n }' }
    """
    And given the workflow input is:
    """yaml
    total: 0
    numbers: [ 4, 5, 6, 7 ]
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    total: 15
    """

  Scenario: A fork without competition returns every branch's output in order
    Given a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: fork-all, version: '1.0.0' }
    do:
      - fanOut:
          fork:
            branches:
              - first:
                  set: { n: 1 }
              - second:
                  wait: { seconds: 5 }
              - third:
                  set: { n: 3 }
    """
    When the workflow is started
    Then the workflow should be waiting
    When 5 seconds pass
    Then the workflow should complete with output:
    """yaml
    [ { n: 1 }, {}, { n: 3 } ]
    """

  Scenario: Exit leaves the current list, continue goes on, end stops everything
    Given a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: directives, version: '1.0.0' }
    do:
      - outer:
          do:
            - a:
                set: { path: [ a ] }
                then: continue
            - b:
                set: '${ .path += [ "b" ] }'
                then: exit
            - skipped:
                set: '${ .path += [ "never" ] }'
      - after:
          set: '${ .path += [ "after" ] }'
          then: end
      - alsoSkipped:
          set: '${ .path += [ "never" ] }'
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    path: [ a, b, after ]
    """
    And after should run last

  Scenario: A sub-flow runs as a durable child run
    Given the workflow available to run:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: greeter, version: '2.0.0' }
    do:
      - greet:
          wait: { seconds: 1 }
      - say:
          set: { message: '${ "Hello \(.name)" }' }
    """
    And a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: parent, version: '1.0.0' }
    do:
      - delegate:
          run:
            workflow: { namespace: test, name: greeter, version: '2.0.0', input: { name: '${ .who }' } }
    """
    And given the workflow input is:
    """yaml
    who: Bob
    """
    When the workflow is started
    Then the workflow should be waiting
    When 1 seconds pass
    Then the workflow should complete with output:
    """yaml
    message: Hello Bob
    """

  Scenario: Running a shell command is refused unless allowed
    Given a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: shell, version: '1.0.0' }
    do:
      - list:
          run:
            shell: { command: ls }
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/configuration
    status: 400
    instance: /do/0/list/run/shell
    """

  Scenario: Killed with SIGKILL mid-flow, the run resumes at the task where it stopped
    Given a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: crash, version: '1.0.0' }
    do:
      - first:
          call: sideEffect
          with: { name: first }
      - second:
          call: blockInFirstEngine
      - third:
          call: sideEffect
          with: { name: third }
    """
    When the engine is killed with SIGKILL during 'second' and a new engine resumes
    Then the workflow should complete
    And the side effects should be 'first', 'third'

  Scenario: A composite task's timeout ends a wait inside it, even across parking
    Given a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: composite-timeout, version: '1.0.0' }
    do:
      - guarded:
          try:
            - slowly:
                do:
                  - first:
                      set: { started: true }
                  - nap:
                      wait: { hours: 2 }
                timeout:
                  after: { hours: 1 }
          catch:
            errors:
              with: { type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout }
            as: late
            do:
              - report:
                  set: { timedOut: '${ $late.instance }' }
    """
    When the workflow is started
    Then the workflow should be waiting
    When 3599 seconds pass
    Then the workflow should be waiting
    When 1 seconds pass
    Then the workflow should complete with output:
    """yaml
    timedOut: /do/0/guarded/try/0/slowly
    """

  Scenario: The workflow's own timeout faults a run that waits too long
    Given a workflow with definition:
    """yaml
    document: { dsl: '1.0.3', namespace: test, name: workflow-timeout, version: '1.0.0' }
    timeout:
      after: { minutes: 10 }
    do:
      - longWait:
          wait: { hours: 1 }
    """
    When the workflow is started
    And 600 seconds pass
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
    status: 408
    """
