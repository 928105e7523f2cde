locals {
  # SystemErrors is published per (TableName, Operation), so the widget uses a
  # SEARCH over the three project tables instead of listing every operation.
  system_errors_search = "SEARCH('{AWS/DynamoDB,Operation,TableName} MetricName=\"SystemErrors\" TableName=(\"${aws_dynamodb_table.fp_events.name}\" OR \"${aws_dynamodb_table.consent.name}\" OR \"${aws_dynamodb_table.block_counter.name}\")', 'Sum', ${var.alarm_period_seconds})"
}

resource "aws_cloudwatch_dashboard" "main" {
  dashboard_name = local.prefix

  dashboard_body = jsonencode({
    widgets = [
      {
        type   = "metric"
        x      = 0
        y      = 0
        width  = 12
        height = 6
        properties = {
          title   = "DynamoDB consumed read capacity (RCU)"
          region  = var.region
          view    = "timeSeries"
          stacked = false
          stat    = "Sum"
          period  = var.alarm_period_seconds
          metrics = [
            ["AWS/DynamoDB", "ConsumedReadCapacityUnits", "TableName", aws_dynamodb_table.fp_events.name, { label = "fp-events" }],
            ["AWS/DynamoDB", "ConsumedReadCapacityUnits", "TableName", aws_dynamodb_table.consent.name, { label = "consent" }],
            ["AWS/DynamoDB", "ConsumedReadCapacityUnits", "TableName", aws_dynamodb_table.block_counter.name, { label = "block-counter" }],
          ]
        }
      },
      {
        type   = "metric"
        x      = 12
        y      = 0
        width  = 12
        height = 6
        properties = {
          title   = "DynamoDB consumed write capacity (WCU)"
          region  = var.region
          view    = "timeSeries"
          stacked = false
          stat    = "Sum"
          period  = var.alarm_period_seconds
          metrics = [
            ["AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", aws_dynamodb_table.fp_events.name, { label = "fp-events" }],
            ["AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", aws_dynamodb_table.consent.name, { label = "consent" }],
            ["AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", aws_dynamodb_table.block_counter.name, { label = "block-counter" }],
          ]
        }
      },
      {
        type   = "metric"
        x      = 0
        y      = 6
        width  = 12
        height = 6
        properties = {
          title   = "DynamoDB user errors (account and region)"
          region  = var.region
          view    = "timeSeries"
          stacked = false
          stat    = "Sum"
          period  = var.alarm_period_seconds
          metrics = [
            ["AWS/DynamoDB", "UserErrors", { label = "UserErrors" }],
          ]
        }
      },
      {
        type   = "metric"
        x      = 12
        y      = 6
        width  = 12
        height = 6
        properties = {
          title   = "DynamoDB system errors (project tables)"
          region  = var.region
          view    = "timeSeries"
          stacked = false
          stat    = "Sum"
          period  = var.alarm_period_seconds
          metrics = [
            [{ id = "systemErrors", expression = local.system_errors_search, label = "SystemErrors" }],
          ]
        }
      },
      {
        type   = "metric"
        x      = 0
        y      = 12
        width  = 12
        height = 6
        properties = {
          title   = "SSM parameter failures (nonce reads)"
          region  = var.region
          view    = "timeSeries"
          stacked = false
          stat    = "Sum"
          period  = var.alarm_period_seconds
          metrics = [
            [local.custom_metric_namespace, "SSMParameterFailures", { label = "SSMParameterFailures" }],
          ]
          annotations = {
            horizontal = [{ label = "alarm threshold", value = var.ssm_failure_threshold }]
          }
        }
      },
      {
        type   = "metric"
        x      = 12
        y      = 12
        width  = 12
        height = 6
        properties = {
          title   = "Circuit breaker triggers"
          region  = var.region
          view    = "timeSeries"
          stacked = false
          stat    = "Sum"
          period  = var.alarm_period_seconds
          metrics = [
            [local.custom_metric_namespace, "CircuitBreakerTriggers", { label = "CircuitBreakerTriggers" }],
          ]
          annotations = {
            horizontal = [{ label = "alarm threshold", value = var.circuit_breaker_threshold }]
          }
        }
      },
      {
        type   = "alarm"
        x      = 0
        y      = 18
        width  = 24
        height = 6
        properties = {
          title  = "Alarm status (8 alarms)"
          alarms = local.alarm_arns
        }
      },
    ]
  })
}
