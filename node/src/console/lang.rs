//! The words of the console: Chinese by default, English by a toggle (a
//! cookie). Both languages are one table, so no word exists in one only.

use axum::{
    extract::{FromRequestParts, Path, Query},
    http::{HeaderMap, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

/// The language cookie.
const LANG_COOKIE: &str = "tt_lang";

/// A page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// 中文.
    Zh,
    /// English.
    En,
}

macro_rules! words {
    ($($field:ident: $zh:literal, $en:literal;)*) => {
        /// Every word a page shows, in one language.
        #[derive(Debug)]
        pub struct Words {
            $(#[doc = $en] pub $field: &'static str,)*
        }
        /// 中文.
        pub const ZH: Words = Words { $($field: $zh,)* };
        /// English.
        pub const EN: Words = Words { $($field: $en,)* };
    };
}

words! {
    html_lang: "zh-CN", "en";
    product: "矛盾纠纷统计", "Dispute statistics";
    other_lang: "English", "中文";
    other_lang_code: "en", "zh";
    nav_figures: "数据", "Figures";
    nav_completeness: "报送情况", "Reporting";
    nav_findings: "需核实", "Findings";
    findings_title: "需核实数据", "Figures that need checking";
    findings_hint: "由本单位持有的已签名汇总计算，规则及阈值见 docs/FINDINGS.md。需核实不等于有误。", "Computed from the signed summaries this unit holds; docs/FINDINGS.md defines each rule and threshold. A finding asks for a check; it does not say a figure is wrong.";
    findings_none: "没有需核实的数据。", "Nothing needs checking.";
    all_periods: "全部期间", "All periods";
    all_rules: "全部规则", "All rules";
    all_severities: "全部级别", "All severities";
    rule: "需核实", "Rule";
    severity: "级别", "Severity";
    observed: "实际", "Observed";
    expected: "预期", "Expected";
    statistic: "统计量", "Statistic";
    threshold: "阈值", "Threshold";
    finding_id: "编号", "Id";
    filter: "筛选", "Filter";
    nav_entry: "录入", "Entry";
    nav_upload: "导入文件", "Upload";
    logout: "退出", "Log out";
    login: "登录", "Log in";
    login_title: "登录控制台", "Log in to the console";
    token_label: "访问令牌", "Access token";
    token_hint: "本单位管理员用 tallytree token add 发放的令牌（以 tt_ 开头）。", "The token your unit's administrator issued with tallytree token add (it starts with tt_).";
    unknown_token: "令牌无效或已吊销。", "Unknown or revoked token.";
    too_many_logins: "登录尝试过多，请一分钟后再试。", "Too many login attempts; try again in a minute.";
    form_expired: "表单已过期，请刷新页面后重试。", "This form has expired; reload the page and try again.";
    not_allowed: "当前凭据无权访问此页面", "Your credential does not allow this page";
    not_found: "页面不存在。", "No such page.";
    store_unavailable: "存储暂不可用，请稍后再试。", "Storage is unavailable; try again later.";
    error_title: "出错了", "Something went wrong";
    back_home: "返回首页", "Back to the start";
    period: "统计期", "Period";
    show: "查看", "Show";
    print: "打印月报", "Print monthly report";
    csv_excel: "CSV（Excel）", "CSV (Excel)";
    monthly_report: "月报", " monthly report";
    issuer: "制表机关", "Issued by";
    registered: "排查受理", "Registered";
    resolved: "化解", "Resolved";
    escalated: "上交", "Escalated";
    in_progress: "在办", "In progress";
    on_time: "按期化解", "Resolved on time";
    resolution: "化解率", "Resolution";
    on_time_rate: "按期化解率", "On time";
    escalation: "上交率", "Escalation";
    task_completion: "任务完成率", "Task completion";
    tasks_assigned: "任务", "Tasks";
    tasks_completed: "已完成", "Completed";
    tasks_overdue: "逾期", "Overdue";
    mom: "环比", "vs last month";
    yoy: "同比", "vs last year";
    trend: "月度趋势", "Monthly trend";
    categories: "类别构成", "By category";
    category: "类别", "Category";
    ranking: "下级单位排名", "Units below, ranked";
    rank: "名次", "Rank";
    unit: "单位", "Unit";
    code: "区划代码", "Region code";
    level: "层级", "Level";
    month: "月份", "Month";
    reported: "已报下级", "Units reported";
    revision: "修订版本", "Revision";
    signed_at: "签名时间", "Signed at";
    received_at: "接收时间", "Received at";
    key_id: "签名密钥", "Key id";
    digest: "摘要", "Digest";
    verified: "本节点已验证", "Verified by this node";
    verified_yes: "已验证", "verified";
    verified_no: "未验证", "not verified";
    pending: "待签名", "to be signed";
    no_summary: "本月尚无签名汇总。", "No signed summary for this month yet.";
    source: "来源", "Source";
    details: "签名详情", "Signature details";
    no_children: "没有下级单位。", "No units below.";
    completeness_title: "报送情况", "Who has reported";
    completeness_hint: "每月按时：月末后", "On time: within";
    completeness_days: "天内签名", "days after the month's end";
    status_received: "已报", "received";
    status_late: "迟报", "late";
    status_missing: "未报", "missing";
    status_unverified: "未验证", "not verified";
    missing_first: "未报单位排在最前。", "Units with missing months first.";
    missing_count: "未报月数", "Months missing";
    late_count: "迟报月数", "Months late";
    received_count: "已报/应报", "Received / expected";
    trust_title: "签名与来源", "Signatures and provenance";
    revisions: "全部修订", "All revisions";
    counted: "被上级计入", "Counted";
    download_dsse: "下载 DSSE JSON", "Download DSSE JSON";
    download_proof: "下载包含证明", "Download inclusion proof";
    download_bundle: "下载证据包", "Download evidence bundle";
    auditor_only: "证据包与包含证明仅限审计员。", "Evidence bundles and proofs are for the auditor role.";
    signer: "签名单位", "Signed by";
    entry_title: "录入", "Entry";
    case_form: "登记或更新纠纷", "Record or update a case";
    task_form: "登记或更新任务", "Record or update a task";
    case_id: "案件编号", "Case number";
    registered_on: "登记日期", "Registered on";
    state: "状态", "State";
    closed_on: "办结日期", "Closed on";
    deadline: "办理期限", "Deadline";
    task_id: "任务编号", "Task number";
    task_title: "任务名称", "Task";
    task_deadline: "截止日期", "Due";
    save: "保存", "Save";
    saved: "已保存。签名汇总将在几秒内更新。", "Saved. The signed summary follows within seconds.";
    refused: "未保存", "Not saved";
    state_in_progress: "在办", "in progress";
    state_resolved: "已化解", "resolved";
    state_escalated: "已上交", "escalated";
    task_in_progress: "进行中", "in progress";
    task_completed: "已完成", "completed";
    own_months: "本单位月度数据与签名状态", "This unit's months and their signatures";
    open_cases: "在办案件", "Cases in progress";
    update: "更新", "Update";
    signing_status: "签名状态", "Signature";
    signed: "已签名", "signed";
    upload_title: "导入 CSV 文件", "Upload a CSV file";
    upload_hint: "与命令行 tallytree import 相同的文件与规则。先预览，确认后才保存。", "The same files and rules as tallytree import. You see a preview; nothing is stored until you confirm.";
    upload_kind: "文件内容", "The file holds";
    kind_cases: "纠纷案件", "cases";
    kind_tasks: "治理任务", "tasks";
    file: "文件", "File";
    preview: "预览", "Preview";
    line: "行号", "Line";
    id: "编号", "Id";
    outcome: "结果", "Outcome";
    will_store: "将保存", "will be stored";
    will_refuse: "将拒收", "refused";
    stored: "已保存", "stored";
    skip_invalid: "只保存合格的行（其余拒收）", "Store the valid rows only (refuse the others)";
    confirm: "确认保存", "Confirm and store";
    preview_summary: "行合格，", "rows valid,";
    preview_refused: "行将拒收", "rows refused";
    nothing_stored: "有行被拒收，未保存任何行。", "Rows were refused; nothing was stored.";
    upload_expired: "预览已过期，请重新上传。", "This preview has expired; upload the file again.";
    all_refused_note: "全部或不保存：有任何一行被拒收时，除非勾选下方选项，否则不保存。", "All or nothing: if any row is refused nothing is stored, unless you tick the option below.";
    export_subtree: "导出全部下级（CSV）", "Export every unit below (CSV)";
    stamp_line: "单位负责人：　　　　　统计负责人：　　　　　填表人：　　　　　报出日期：", "Head of unit:            Statistics officer:            Prepared by:            Date:";
    printed_at: "打印时间", "Printed at";
    chart_table: "图表数据", "Chart data";
}

impl Lang {
    /// The language of a request: its cookie, else Chinese.
    pub fn of(headers: &HeaderMap) -> Lang {
        match super::session::cookie(headers, LANG_COOKIE) {
            Some("en") => Lang::En,
            _ => Lang::Zh,
        }
    }

    /// Its words.
    pub fn t(self) -> &'static Words {
        match self {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::of(&parts.headers))
    }
}

/// `?next=` of the toggle.
#[derive(Debug, Deserialize)]
pub struct Back {
    next: Option<String>,
}

/// `/lang/en` or `/lang/zh`: sets the language and goes back.
pub async fn switch(Path(lang): Path<String>, Query(back): Query<Back>) -> Response {
    let value = if lang == "en" { "en" } else { "zh" };
    let next = back
        .next
        .filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or_else(|| "/".into());
    (
        [(
            header::SET_COOKIE,
            format!("{LANG_COOKIE}={value}; Path=/; Secure; SameSite=Lax; Max-Age=31536000"),
        )],
        Redirect::to(&next),
    )
        .into_response()
}
